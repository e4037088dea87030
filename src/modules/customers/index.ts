/**
 * What other modules may use of the customers module: a narrow interface, so that the customers'
 * tables and queries can change without touching orders, interactions, feedback or segments.
 */
export {
  activeCustomers, countCustomers, customerExists, customerVersion, searchCustomers, type ActiveCustomer, type CustomerRecord,
} from './customers.repository.js'
export { normalizeEmail, normalizePhone, searchPage, toCustomerDto } from './customers.service.js'
