import { randomInt } from 'node:crypto'

/**
 * The seed of the randomized tests (fast-check properties, the fuzzer): CRM_TEST_SEED replays a
 * run; else the test's own fixed seed if it has one; else the run's (CRM_TEST_RUN_SEED, drawn by
 * scripts/test.ts, so a rerun of a failed file replays it); else a fresh one. Tests put it in their
 * names (`seed=N`, see `seeded`), so the failure line the runner prints says how to replay it:
 * `CRM_TEST_SEED=N npm test -- <file>`.
 */
export function testSeed(fallback?: number): number {
  const given = envSeed('CRM_TEST_SEED')
  return given ?? fallback ?? envSeed('CRM_TEST_RUN_SEED') ?? randomInt(2 ** 31)
}

function envSeed(name: string): number | undefined {
  const given = process.env[name]
  if (given === undefined || given === '') return undefined
  const seed = Number(given)
  if (!Number.isSafeInteger(seed)) throw new Error(`${name} must be an integer, not ${given}`)
  return seed
}

/** A test name that carries the seed its randomness came from. */
export const seeded = (name: string, seed: number) => `${name} (seed=${seed})`

/**
 * A small deterministic generator (mulberry32) for data sets that must be the same on every run
 * with one seed: what the filter and analytics models check against.
 */
export function prng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1))
  return {
    next,
    int,
    pick: <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!,
    chance: (p: number) => next() < p,
    maybe: <T>(p: number, v: () => T): T | null => (next() < p ? v() : null),
    subset: <T>(xs: readonly T[]) => xs.filter(() => next() < 0.35),
  }
}
