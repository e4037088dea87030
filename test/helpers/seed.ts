import { randomInt } from 'node:crypto'

/**
 * The seed of the randomized tests (fast-check properties, the fuzzer): CRM_TEST_SEED replays a
 * run, otherwise each run draws its own. Tests put it in their names (`seed=N`, see `seeded`), so
 * the failure line the runner prints says how to replay it:
 * `CRM_TEST_SEED=N npm test -- <file>`.
 */
export function testSeed(fallback?: number): number {
  const given = process.env.CRM_TEST_SEED
  if (given !== undefined && given !== '') {
    const seed = Number(given)
    if (!Number.isSafeInteger(seed)) throw new Error(`CRM_TEST_SEED must be an integer, not ${given}`)
    return seed
  }
  return fallback ?? randomInt(2 ** 31)
}

/** A test name that carries the seed its randomness came from. */
export const seeded = (name: string, seed: number) => `${name} (seed=${seed})`
