/**
 * What other modules (webhooks) may use of the events module: reading the change feed from a
 * position, and the position codec.
 */
export { eventsAfter, feedHead, feedHorizon, type EventRecord, type FeedOptions, type FeedPage } from './events.repository.js'
export { decodePosition, encodePosition, FEED_START, positionBefore, type Position } from './events.position.js'
