/** The markdown report of a bench run: figures with their noise, ratios, growth and targets. */
import type { Measurement } from './lib/load.js'
import type { BatchFigures } from './batch.js'
import type { ImportFigures } from './import.js'
import type { Scenario, Variant } from './scenarios.js'

export interface Result {
  scenario: string
  size: number
  variant: Variant
  round: number
  m: Measurement
}

interface ReportInput {
  results: Result[]
  batches: BatchFigures[]
  imports?: ImportFigures
  scenarios: Scenario[]
  sizes: number[]
  seconds: number
  rounds: number
  loader: string
  connections: { throughput: number; latency: number }
  command: string
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const f = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a')
/** median [min–max] */
const spread = (xs: number[], digits = 2) => `${f(median(xs), digits)} [${f(Math.min(...xs), digits)}–${f(Math.max(...xs), digits)}]`
const cpu = (rs: Result[]) => {
  const xs = rs.map((r) => r.m.serverCpuMsPerRequest).filter((x): x is number => x !== undefined)
  return xs.length ? spread(xs, 3) : 'n/a'
}
const sizeLabel = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n))

/** The import target of issue 5: the API at ≥ 50 % of raw COPY's speed. */
export const IMPORT_TARGET_RATIO = 0.5

/** The import figures: rows/s and time of each side over the rounds, and the paired ratio. */
export function importReport(i: ImportFigures): string {
  const rowsPerSecond = (ms: number[]) => ms.map((x) => i.rows / (x / 1000))
  const seconds = (ms: number[]) => ms.map((x) => x / 1000)
  return [
    `| import of ${sizeLabel(i.rows)} customers, ${i.rawMs.length} rounds | rows/s | seconds |`, '|---|---|---|',
    `| raw COPY into customers (indexes, audit trigger) | ${spread(rowsPerSecond(i.rawMs), 0)} | ${spread(seconds(i.rawMs))} |`,
    `| POST /v1/imports until the job succeeded | ${spread(rowsPerSecond(i.apiMs), 0)} | ${spread(seconds(i.apiMs))} |`,
    '',
    `API speed / raw COPY speed, per round: ${spread(i.ratios)} (target ≥ ${f(IMPORT_TARGET_RATIO)} at 1M)`,
  ].join('\n')
}

export function report(input: ReportInput): string {
  const { results } = input
  // An import-only run measures no size.
  const sizes = results.length ? input.sizes : []
  const pick = (scenario: string, size: number, variant: Variant) => results.filter((r) => r.scenario === scenario && r.size === size && r.variant === variant)
  const lines: string[] = []
  lines.push(`# crm-api benchmark`, '')
  lines.push(`\`${input.command}\` — ${input.rounds} interleaved rounds of ${input.seconds} s per figure; load generator ${input.loader} ` +
    `(${input.connections.throughput} connections for throughput scenarios, ${input.connections.latency} for latency scenarios; ` +
    'sequential scenarios: one request at a time from the bench process). ' +
    'Each cell: median of the rounds [min–max]. Latencies in ms.', '')

  if (results.length) lines.push('## Figures', '', '| scenario | size | variant | req/s | p50 ms | p99 ms | server CPU ms/req | requests | errors |', '|---|---|---|---|---|---|---|---|---|')
  for (const s of input.scenarios.filter((x) => !x.pending)) {
    for (const size of sizes) {
      for (const v of s.variants) {
        const rs = pick(s.name, size, v)
        if (rs.length === 0) continue
        lines.push(`| ${s.name} | ${sizeLabel(size)} | ${v} | ${spread(rs.map((r) => r.m.rps), 0)} | ${spread(rs.map((r) => r.m.p50Ms))} | ` +
          `${spread(rs.map((r) => r.m.p99Ms))} | ${cpu(rs)} | ${rs.reduce((a, r) => a + r.m.requests, 0)} | ${rs.reduce((a, r) => a + r.m.errors, 0)} |`)
      }
    }
  }

  // Paired ratios: each round's variants ran back to back, so their ratio cancels slow drifts.
  const ratio = (scenario: string, size: number, a: Variant, b: Variant, of: (m: Measurement) => number) => {
    const xs: number[] = []
    for (const ra of pick(scenario, size, a)) {
      const rb = pick(scenario, size, b).find((r) => r.round === ra.round)
      if (rb) xs.push(of(ra.m) / of(rb.m))
    }
    return xs
  }
  const getRatios: string[] = []
  for (const size of sizes) {
    const vsMin = ratio('get_customer', size, 'full', 'minimal', (m) => m.rps)
    const vsPg = ratio('get_customer', size, 'full', 'pgbench', (m) => m.rps)
    const minVsPg = ratio('get_customer', size, 'minimal', 'pgbench', (m) => m.rps)
    const cpuRatio = ratio('get_customer', size, 'minimal', 'full', (m) => m.serverCpuMsPerRequest ?? NaN).filter(Number.isFinite)
    if (vsMin.length) {
      getRatios.push(`| ${sizeLabel(size)} | ${spread(vsMin)} | ${cpuRatio.length ? spread(cpuRatio) : 'n/a'} | ${vsPg.length ? spread(vsPg) : 'n/a'} | ${minVsPg.length ? spread(minVsPg) : 'n/a'} |`)
    }
  }
  if (getRatios.length) {
    lines.push('', '## get_customer ratios (per round, paired)', '',
      'req/s ratios, and the CPU ratio: minimal\'s server CPU per request / full\'s, i.e. the share of the minimal route\'s throughput the full stack reaches on a dedicated core.', '',
      '| size | req/s full / minimal | CPU-bound full / minimal | req/s full / pgbench | req/s minimal / pgbench |', '|---|---|---|---|---|', ...getRatios)
  }

  if (sizes.length > 1) {
    lines.push('', `## Growth with size (full stack, median latency relative to ${sizeLabel(sizes[0]!)})`, '', '| scenario | size | p50 × | p99 × |', '|---|---|---|---|')
    for (const s of input.scenarios.filter((x) => !x.pending)) {
      const base = pick(s.name, sizes[0]!, 'full')
      if (base.length === 0) continue
      for (const size of sizes.slice(1)) {
        const rs = pick(s.name, size, 'full')
        if (rs.length === 0) continue
        lines.push(`| ${s.name} | ${sizeLabel(size)} | ${f(median(rs.map((r) => r.m.p50Ms)) / median(base.map((r) => r.m.p50Ms)))} | ` +
          `${f(median(rs.map((r) => r.m.p99Ms)) / median(base.map((r) => r.m.p99Ms)))} |`)
      }
    }
  }

  if (input.batches.length) {
    lines.push('', '## batch_create_orders (POST /v1/orders/batch, 1,000 orders × 2 items, sequential)', '',
      '| size | batches | min ms | median ms | max ms | orders/s at median |', '|---|---|---|---|---|---|')
    for (const b of input.batches) lines.push(`| ${sizeLabel(b.size)} | ${b.batches} | ${f(b.minMs, 0)} | ${f(b.medianMs, 0)} | ${f(b.maxMs, 0)} | ${f(b.ordersPerSecond, 0)} |`)
  }

  if (input.imports) {
    lines.push('', '## import (its own database; rounds alternate raw COPY and the API on an emptied table)', '', importReport(input.imports))
  }

  const largest = sizes[sizes.length - 1]
  lines.push('', `## Targets (issue 5)${largest ? `, at the largest size measured (${sizeLabel(largest)})` : ''}`, '', '| scenario | target | measured | holds |', '|---|---|---|---|')
  for (const s of input.scenarios) {
    const t = s.target
    if (!t) continue
    if (s.pending) {
      lines.push(`| ${s.name} | p99 ${t.p99BelowMs ? `< ${t.p99BelowMs}` : `≤ ${t.p99Ms}`} ms | not measured: ${s.pending.split(':')[0]} | – |`)
      continue
    }
    if (largest === undefined) continue
    const rs = pick(s.name, largest, 'full')
    if (rs.length === 0) continue
    if (t.ratioToMinimal) {
      const r = median(ratio(s.name, largest, 'full', 'minimal', (m) => m.rps))
      lines.push(`| ${s.name} | req/s ≥ ${t.ratioToMinimal * 100} % of minimal | ${f(r * 100, 0)} % | ${r >= t.ratioToMinimal ? 'yes' : 'NO'} |`)
      const c = median(ratio(s.name, largest, 'minimal', 'full', (m) => m.serverCpuMsPerRequest ?? NaN).filter(Number.isFinite))
      if (Number.isFinite(c)) lines.push(`| ${s.name} | CPU-bound throughput ≥ ${t.ratioToMinimal * 100} % of minimal | ${f(c * 100, 0)} % | ${c >= t.ratioToMinimal ? 'yes' : 'NO'} |`)
    }
    if (t.p99Ms) {
      const p99 = median(rs.map((r) => r.m.p99Ms))
      lines.push(`| ${s.name} | p99 ≤ ${t.p99Ms} ms | ${f(p99)} ms | ${p99 <= t.p99Ms ? 'yes' : 'NO'} |`)
    }
    if (t.p99BelowMs) {
      const p99 = median(rs.map((r) => r.m.p99Ms))
      lines.push(`| ${s.name} | p99 < ${t.p99BelowMs} ms | ${f(p99)} ms | ${p99 < t.p99BelowMs ? 'yes' : 'NO'} |`)
    }
    if (t.maxMs) {
      const max = Math.max(...rs.map((r) => r.m.maxMs))
      lines.push(`| ${s.name} | never above ${t.maxMs} ms | max ${f(max)} ms | ${max <= t.maxMs ? 'yes' : 'NO'} |`)
    }
    if (t.growth && sizes.length > 1) {
      const base = median(pick(s.name, sizes[0]!, 'full').map((r) => r.m.p50Ms))
      const g = median(rs.map((r) => r.m.p50Ms)) / base
      lines.push(`| ${s.name} | p50 growth ${sizeLabel(sizes[0]!)}→${sizeLabel(largest)} ≤ ${t.growth}× | ${f(g)}× | ${g <= t.growth ? 'yes' : 'NO'} |`)
    }
  }
  if (input.imports) {
    const r = median(input.imports.ratios)
    const atScale = input.imports.rows >= 1_000_000 ? '' : ' (the target is stated for 1M rows: --import-rows 1000000)'
    lines.push(`| import (${sizeLabel(input.imports.rows)} rows) | API ≥ ${IMPORT_TARGET_RATIO * 100} % of raw COPY rows/s | ${f(r * 100, 0)} % | ${r >= IMPORT_TARGET_RATIO ? 'yes' : 'NO'}${atScale} |`)
  }
  return lines.join('\n') + '\n'
}
