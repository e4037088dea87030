/** What other modules may use of the metrics module. */
export { findMetrics, flushPendingMetrics, refreshMetrics, type MetricsRows } from './metrics.repository.js'
