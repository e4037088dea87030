import type { Db } from '../../db/database.js'
import { feedHead } from './events.repository.js'
import { positionBefore, type Position } from './events.position.js'

/**
 * Wakes long-polling readers when the feed's visible head passes what they have read. However
 * many requests wait, an instance runs one cheap query per interval (the newest position below
 * the snapshot's xmin), and only while someone waits. Polling, not LISTEN/NOTIFY: an event
 * becomes readable when every older transaction has ended, not when its own commits, and a
 * NOTIFY cannot say when that is.
 */
export class FeedWatcher {
  private waiters = new Map<() => void, Position>()
  private timer: NodeJS.Timeout | null = null
  closed = false

  constructor(private readonly db: Db, private readonly intervalMs: number) {}

  /**
   * Resolves when the feed has an event after `since`, after `ms`, or when `signal` aborts,
   * whichever comes first.
   */
  wait(since: Position, ms: number, signal: AbortSignal): Promise<void> {
    if (this.closed || ms <= 0 || signal.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timeout)
        signal.removeEventListener('abort', done)
        this.waiters.delete(done)
        resolve()
      }
      const timeout = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
      this.waiters.set(done, since)
      this.schedule()
    })
  }

  /** Releases every waiter and stops polling (the app is closing). */
  close(): void {
    this.closed = true
    for (const done of [...this.waiters.keys()]) done()
    if (this.timer) clearTimeout(this.timer)
  }

  private schedule(): void {
    if (this.timer || this.closed) return
    this.timer = setTimeout(() => void this.poll(), this.intervalMs)
    this.timer.unref()
  }

  private async poll(): Promise<void> {
    try {
      const head = await feedHead(this.db)
      for (const [done, since] of [...this.waiters]) if (positionBefore(since, head)) done()
    } catch {
      // A failed poll is retried at the next interval; each waiter's own timeout still bounds it.
    } finally {
      this.timer = null
      if (this.waiters.size > 0) this.schedule()
    }
  }
}
