/**
 * OpenTelemetry tracing, loaded before the app with `node --import` (`npm start` and the image
 * do): the instrumentations patch http and pg as they are loaded, so this must run first.
 *
 * Off unless an OTLP endpoint is configured, following the OpenTelemetry environment conventions:
 * OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) turns it on; the SDK itself
 * reads OTEL_SERVICE_NAME (default here: crm-api), OTEL_RESOURCE_ATTRIBUTES,
 * OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and the rest;
 * OTEL_SDK_DISABLED=true turns it off again. Traces go out over OTLP/HTTP (JSON).
 *
 * What spans carry: the HTTP server span (route pattern, method, status), Fastify's request and
 * handler spans, one span per SQL statement with its text (Kysely sends values as parameters,
 * which are never recorded), and, set by plugins/tracing.ts, the request id and the actor's
 * subject. Never bodies, query strings' values, headers or SQL parameters: they can hold personal
 * data.
 */
import { register } from 'node:module'

const env = process.env
const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT

if (endpoint && env.OTEL_SDK_DISABLED !== 'true') {
  // ESM imports are patched through import-in-the-middle's loader hook; CommonJS requires (pg,
  // fastify's http) through require-in-the-middle.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)
  const [{ NodeSDK }, { OTLPTraceExporter }, { HttpInstrumentation }, { PgInstrumentation }, { FastifyOtelInstrumentation }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-pg'),
    import('@fastify/otel'),
  ])
  env.OTEL_SERVICE_NAME ||= 'crm-api'
  const quiet = new Set(['/metrics', '/healthz', '/readyz'])
  const sdk = new NodeSDK({
    traceExporter: new OTLPTraceExporter(),
    // Traces only: metrics are Prometheus' (/metrics), logs are pino's.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new HttpInstrumentation({
        // Probes and scrapes would be most of the traces.
        ignoreIncomingRequestHook: (req) => quiet.has((req.url ?? '').split('?')[0]!),
        // Only outgoing calls made inside a traced request (JWKS fetches): not the exporter's own.
        requireParentforOutgoingSpans: true,
      }),
      // No parameter values (enhancedDatabaseReporting off): they are the customers' data.
      new PgInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false }),
      new FastifyOtelInstrumentation({ registerOnInitialization: true, ignorePaths: (opts) => quiet.has(opts.url) }),
    ],
  })
  sdk.start()
  // server.ts flushes the last spans after it has closed (see tracingShutdown in plugins/tracing.ts).
  ;(globalThis as { crmTracing?: { shutdown(): Promise<void> } }).crmTracing = { shutdown: () => sdk.shutdown() }
}

export {}
