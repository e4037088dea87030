/** What other modules may use of the audit module: sealing the trail into its chain and verifying it. */
export { sealAuditTrail, verifyAuditChain, type ChainVerification } from './audit.repository.js'
