import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problemResponses, ref } from '../../lib/schema.js'
import { inSnapshot } from './analytics.repository.js'
import * as service from './analytics.service.js'
import {
  AcquisitionQuery, AcquisitionSources, ChurnRiskPage, ChurnRiskQuery, CohortRetention, CohortsQuery, CustomerValuePage, LifecycleDistribution,
  LifecycleQuery, RfmCustomerPage, RfmCustomersQuery, RfmQuery, RfmSummary, Satisfaction, SatisfactionQuery, ValueCustomersQuery, ValueTiers,
  ValueTiersQuery, analyticsSchemas,
} from './analytics.schemas.js'

const tags = ['analytics']
// Aggregates over every customer: the long request deadline (REQUEST_DEADLINE_LONG_MS).
const config = { scope: 'analytics:read' as const, deadline: 'long' as const }
const ERRORS = problemResponses(400, 401, 403)
const COMMON =
  'Computed by PostgreSQL at request time; `method` states the population, formulas and window. Pin as_of for reproducible figures. '

const analyticsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of analyticsSchemas) app.addSchema(schema)

  app.get('/analytics/rfm', {
    config,
    schema: {
      operationId: 'getRfmSegments', tags, summary: 'RFM segment distribution',
      description: COMMON + 'Recency, frequency and monetary quintile scores (ntile(5), ties share the lowest score) over purchases in one currency, ' +
        'and the number of customers in each R/F segment (the map is in each segment\'s rule).',
      querystring: RfmQuery,
      response: { 200: ref(RfmSummary), ...ERRORS },
    },
  }, async (request) => inSnapshot(request.db, (db) => service.rfmSummary(db, request.query)))

  app.get('/analytics/rfm/customers', {
    config,
    schema: {
      operationId: 'listRfmCustomers', tags, summary: 'RFM scores per customer',
      description: COMMON + 'Cursor-paginated, highest RFM code first. A next page without as_of or currency reuses those of the cursor.',
      querystring: RfmCustomersQuery,
      response: { 200: ref(RfmCustomerPage), ...ERRORS },
    },
  }, async (request) => inSnapshot(request.db, (db) => service.rfmCustomers(db, request.query)))

  app.get('/analytics/value-tiers', {
    config,
    schema: {
      operationId: 'getValueTiers', tags, summary: 'Value tiers by customer lifetime value',
      description: COMMON + 'Customers in tiers top_1, top_5, top_20 and rest by percentiles of historical CLV in one currency.',
      querystring: ValueTiersQuery,
      response: { 200: ref(ValueTiers), ...ERRORS },
    },
  }, async (request) => inSnapshot(request.db, (db) => service.valueTiers(db, request.query)))

  app.get('/analytics/value-tiers/customers', {
    config,
    schema: {
      operationId: 'listCustomerValues', tags, summary: 'Lifetime value per customer',
      description: COMMON + 'Historical and simple predictive CLV with the tier, cursor-paginated, highest historical CLV first.',
      querystring: ValueCustomersQuery,
      response: { 200: ref(CustomerValuePage), ...ERRORS },
    },
  }, async (request) => inSnapshot(request.db, (db) => service.valueCustomers(db, request.query)))

  app.get('/analytics/lifecycle', {
    config,
    schema: {
      operationId: 'getLifecycleDistribution', tags, summary: 'Customers by lifecycle stage',
      description: COMMON + 'Counts and shares of every lifecycle stage, evaluated as of as_of.',
      querystring: LifecycleQuery,
      response: { 200: ref(LifecycleDistribution), ...ERRORS },
    },
  }, async (request) => inSnapshot(request.db, (db) => service.lifecycle(db, request.query)))

  app.get('/analytics/acquisition-sources', {
    config,
    schema: {
      operationId: 'getAcquisitionSources', tags, summary: 'Conversion and revenue by acquisition source',
      description: COMMON + 'Customers acquired in the window by source, how many purchased, the conversion rate and their revenue in one currency.',
      querystring: AcquisitionQuery,
      response: { 200: ref(AcquisitionSources), ...ERRORS },
    },
  }, async (request) => inSnapshot(request.db, (db) => service.acquisition(db, request.query)))

  app.get('/analytics/churn-risk', {
    config,
    schema: {
      operationId: 'listChurnRisk', tags, summary: 'Customers at churn risk',
      description: COMMON + 'Customers with 2 or more purchases whose time since the last purchase exceeds k times their own median (or mean) interval ' +
        'between purchases, ranked by that ratio, cursor-paginated.',
      querystring: ChurnRiskQuery,
      response: { 200: ref(ChurnRiskPage), ...ERRORS },
    },
  }, async (request) => inSnapshot(request.db, (db) => service.churnRisk(db, request.query)))

  app.get('/analytics/retention/cohorts', {
    config,
    schema: {
      operationId: 'getCohortRetention', tags, summary: 'Cohort retention and repeat-purchase rate',
      description: COMMON + 'Cohorts by first-purchase month (from..to, at most 37 months), with retention at month offsets 0 to 11.',
      querystring: CohortsQuery,
      response: { 200: ref(CohortRetention), ...ERRORS },
    },
  }, async (request) => inSnapshot(request.db, (db) => service.cohorts(db, request.query)))

  app.get('/analytics/satisfaction', {
    config,
    schema: {
      operationId: 'getSatisfaction', tags, summary: 'CSAT, NPS and complaint rates by month',
      description: COMMON + 'CSAT average and percent satisfied, NPS, complaints per 100 purchases by month and in total, and the open complaints.',
      querystring: SatisfactionQuery,
      response: { 200: ref(Satisfaction), ...ERRORS },
    },
  }, async (request) => inSnapshot(request.db, (db) => service.satisfaction(db, request.query)))
}

export default analyticsRoutes
