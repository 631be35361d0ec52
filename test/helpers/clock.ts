// test/helpers/clock.ts
// A fake clock to pass to the mirror (startProxy's `now`), so freshness tests need no waiting, and
// the HTTP date of a moment.

export interface Clock {
  readonly now: () => number
  /** Moves the clock to `offsetMs` after its start. */
  readonly set: (offsetMs: number) => void
}

/** Starts on a whole second, so HTTP Date headers (whole seconds) carry it exactly. */
export function fakeClock(): Clock {
  const start = Math.floor(Date.now() / 1000) * 1000
  let clock = start
  return { now: () => clock, set: (offsetMs) => (clock = start + offsetMs) }
}

/** The HTTP date (IMF-fixdate, whole seconds) of epoch milliseconds `ms`. */
export function httpDate(ms: number): string {
  return new Date(ms).toUTCString()
}
