/**
 * Deterministic randomness for the seed: one small, fast PRNG (sfc32) seeded from --seed, so the
 * same seed, size and as-of day give the same data, and UUID v7 ids built from it.
 */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    this.a = 0x9e3779b9
    this.b = 0x243f6a88
    this.c = 0xb7e15162
    this.d = seed >>> 0
    for (let i = 0; i < 15; i++) this.u32()
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  /** Picks by weight: weights[i] is the relative chance of items[i]. */
  weighted<T>(items: readonly T[], weights: readonly number[]): T {
    let total = 0
    for (const w of weights) total += w
    let x = this.next() * total
    for (let i = 0; i < items.length; i++) {
      x -= weights[i]!
      if (x < 0) return items[i]!
    }
    return items[items.length - 1]!
  }

  /**
   * A Pareto count: at least `min`, most draws close to it, a few very large (shape near 1 is
   * the long tail of real shops: a handful of customers with hundreds of orders). Capped at `max`.
   */
  pareto(min: number, shape: number, max: number): number {
    return Math.min(Math.floor(min / Math.pow(1 - this.next(), 1 / shape)), max)
  }

  /** A small count with the given mean (geometric). */
  geometric(mean: number): number {
    if (mean <= 0) return 0
    const p = 1 / (1 + mean)
    return Math.floor(Math.log(1 - this.next()) / Math.log(1 - p))
  }
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/**
 * UUID v7 (RFC 9562) ids that grow monotonically: as crm_uuid_v7() does for rows inserted one
 * after the other, the 48-bit time field is the load clock, and a 12-bit counter (rand_a, RFC
 * 9562 method 1) orders ids minted within one millisecond. Every index on an id is then
 * appended to at its right edge instead of written at random places.
 */
export class UuidV7 {
  private seq = 0

  constructor(
    private readonly rng: Rng,
    private readonly startMs: number,
  ) {}

  next(): string {
    const ms = this.startMs + Math.floor(this.seq / 4096)
    const counter = this.seq % 4096
    this.seq++
    const hi = Math.floor(ms / 65536) // top 32 bits of the 48-bit time
    const lo = ms % 65536
    const r1 = this.rng.u32()
    const r2 = this.rng.u32()
    return (
      HEX[(hi >>> 24) & 255]! + HEX[(hi >>> 16) & 255]! + HEX[(hi >>> 8) & 255]! + HEX[hi & 255]! + '-' +
      HEX[lo >>> 8]! + HEX[lo & 255]! + '-' +
      HEX[0x70 | (counter >>> 8)]! + HEX[counter & 255]! + '-' +
      HEX[0x80 | ((r1 >>> 24) & 0x3f)]! + HEX[(r1 >>> 16) & 255]! + '-' +
      HEX[(r1 >>> 8) & 255]! + HEX[r1 & 255]! + HEX[(r2 >>> 24) & 255]! + HEX[(r2 >>> 16) & 255]! + HEX[(r2 >>> 8) & 255]! + HEX[r2 & 255]!
    )
  }
}
