import type { CrmApi } from './generated/sdk.gen.js'
import type { Event, EventFeed, ListEventsData } from './generated/types.gen.js'

type FeedQuery = NonNullable<ListEventsData['query']>

export interface EventReadOptions {
  /** Read after this position (an event's `position` or a page's `next_position`); absent: from the oldest retained event. */
  after?: string
  /** Only these event types (`customer.created`, `order.paid`, ...); absent: all. */
  types?: string | readonly string[]
  /** At most this many events per page (1..200, the server's default 50). */
  limit?: FeedQuery['limit']
  /** Long polling: when nothing is new, how many seconds (0..20) the server waits for an event before answering an empty page. */
  wait?: FeedQuery['wait']
  signal?: AbortSignal
}

export interface EventFollowOptions extends EventReadOptions {
  /**
   * Seconds each long poll waits (default 20, the most the API allows). 0: read up to the
   * newest event and end, instead of waiting for more.
   */
  wait?: FeedQuery['wait']
  /** Ends the iteration (without an error), also in the middle of a long poll. */
  signal?: AbortSignal
}

/** The longest long poll the API accepts (`wait` in GET /v1/events). */
const MAX_WAIT_S = 20

/** The change feed (GET /v1/events): one page, or every event as it commits. */
export class CrmEvents {
  readonly #api: CrmApi

  constructor(api: CrmApi) {
    this.#api = api
  }

  /** One page of the feed: `data` oldest first, `next_position` to pass as `after` next time. A purged position throws a CrmProblem with code position-expired (410). */
  async read(opts: EventReadOptions = {}): Promise<EventFeed> {
    const { data } = await this.#api.listEvents({ query: feedQuery(opts), signal: opts.signal ?? null })
    return data
  }

  /**
   * Every event after `after`, in feed order, each once, as it commits: pages are read back to
   * back and, once the reader has caught up, by long polling. `for await (const e of
   * crm.events.follow({ after }))`; keep `e.position` (or the follower's `position`) to resume
   * with `after` later. Ends when `signal` aborts, or at the newest event with `wait: 0`. A
   * position older than the retention throws a CrmProblem with code position-expired (410);
   * network errors and 503s are retried by the client, then thrown.
   */
  follow(opts: EventFollowOptions = {}): EventFollower {
    return new EventFollower(this, opts)
  }
}

/**
 * An iteration over the feed that remembers where it is: `position` is the place up to which
 * events have been handed out (past events the type filter skipped too). Iterating it again
 * continues from there.
 */
export class EventFollower implements AsyncIterable<Event> {
  readonly #events: CrmEvents
  readonly #opts: EventFollowOptions
  #position: string | undefined

  constructor(events: CrmEvents, opts: EventFollowOptions) {
    this.#events = events
    this.#opts = opts
    this.#position = opts.after
  }

  /** Where to resume: pass it as `after` (undefined until the first page when no `after` was given). */
  get position(): string | undefined {
    return this.#position
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Event, void, undefined> {
    const { signal } = this.#opts
    const wait = this.#opts.wait ?? MAX_WAIT_S
    while (!signal?.aborted) {
      let page: EventFeed
      try {
        page = await this.#events.read({ ...this.#opts, after: this.#position, wait })
      } catch (err) {
        if (signal?.aborted) return
        throw err
      }
      for (const event of page.data) {
        if (signal?.aborted) return
        // Set before handing the event out: a consumer that checkpoints inside its loop body stores this event's place.
        this.#position = event.position
        yield event
      }
      // An unchanged position on an empty page means the feed has nothing newer (with a type
      // filter, an empty page may still have moved past events of other types).
      const caughtUp = page.data.length === 0 && page.next_position === this.#position
      this.#position = page.next_position
      if (caughtUp && wait === 0) return
    }
  }
}

function feedQuery(opts: EventReadOptions): FeedQuery {
  const query: FeedQuery = {}
  if (opts.after !== undefined) query.after = opts.after
  if (opts.types !== undefined) {
    // Neither "all" nor "none" would be a safe guess for an empty list: say so instead.
    if (opts.types.length === 0) throw new TypeError('types: name at least one event type, or leave types out for all of them')
    query.types = typeof opts.types === 'string' ? opts.types : opts.types.join(',')
  }
  if (opts.limit !== undefined) query.limit = opts.limit
  if (opts.wait !== undefined) query.wait = opts.wait
  return query
}
