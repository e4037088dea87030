/**
 * The contract's tags, in the order Swagger UI shows them (it keeps the document's order; no
 * tagsSorter): the customer first, then what a customer does (orders, interactions, feedback), how
 * customers are grouped and measured, how changes leave the system, and the ops pages last. A tag
 * an operation uses must be listed here with a description (test/plugins/docs.test.ts); a tag no
 * operation uses yet is left out of the Swagger UI page (src/plugins/docs.ts).
 */
export const TAGS = [
  { name: 'customers', description: 'Customer profiles, their contact points, timeline, search and merge' },
  { name: 'imports', description: 'Bulk imports of customers from CSV or NDJSON, as jobs to poll' },
  { name: 'orders', description: 'Orders with their items, payments and refunds, and the status workflow' },
  { name: 'interactions', description: 'Calls, emails, messages, meetings, visits and other contacts with customers, with follow-ups' },
  { name: 'feedback', description: 'Surveys (CSAT, NPS), complaints and their resolution workflow, suggestions, reviews and praise' },
  { name: 'segments', description: 'Dynamic (filter) and static (listed) sets of customers, their export and membership history' },
  { name: 'analytics', description: 'Customer analytics computed in the database: RFM, lifetime value, lifecycle, acquisition, churn risk, cohorts, satisfaction' },
  { name: 'events', description: 'The change feed: every committed mutation as an event, in one total order a reader follows without missing one' },
  { name: 'webhooks', description: 'Webhook subscriptions and their signed deliveries (Standard Webhooks)' },
  { name: 'access', description: 'Users, teams (inside teams) and roles: who sees which customers and fields, enforced by row-level security' },
  { name: 'audit', description: 'The audit trail of every mutation and its hash chain' },
  { name: 'problems', description: 'The problem types errors refer to: one page per code' },
  { name: 'ops', description: 'Health and readiness' },
] as const satisfies readonly { name: string; description: string }[]
