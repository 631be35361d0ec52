// src/upstream/health.ts
// Passive health of each upstream: failures take it out of rotation for a growing back-off,
// after which the next request probes it again.

/** First back-off after a failure; doubles with each further failure, up to the maximum. */
const BACKOFF_MIN_MS = 1_000
const BACKOFF_MAX_MS = 60_000

export interface UpstreamHealth {
  readonly url: string
  readonly state: 'up' | 'down'
  readonly consecutiveFailures: number
  /** Milliseconds until it is probed again (0 when up). */
  readonly retryInMs: number
  readonly lastError: string | undefined
  readonly requests: number
  readonly failures: number
}

interface State {
  consecutiveFailures: number
  downUntil: number
  lastError: string | undefined
  requests: number
  failures: number
}

export class HealthTracker {
  readonly #states = new Map<string, State>()
  readonly #now: () => number

  constructor(now: () => number) {
    this.#now = now
  }

  #state(url: URL): State {
    let state = this.#states.get(url.href)
    if (state === undefined) {
      state = { consecutiveFailures: 0, downUntil: 0, lastError: undefined, requests: 0, failures: 0 }
      this.#states.set(url.href, state)
    }
    return state
  }

  /** The upstreams in the order to try: those in rotation first (configured order), then the rest. */
  order(upstreams: readonly URL[]): URL[] {
    const now = this.#now()
    const up = upstreams.filter((u) => this.#state(u).downUntil <= now)
    const down = upstreams.filter((u) => this.#state(u).downUntil > now)
    return [...up, ...down]
  }

  succeeded(url: URL): void {
    const state = this.#state(url)
    state.requests++
    state.consecutiveFailures = 0
    state.downUntil = 0
  }

  failed(url: URL, reason: string): void {
    const state = this.#state(url)
    state.requests++
    state.failures++
    state.consecutiveFailures++
    state.lastError = reason
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (state.consecutiveFailures - 1))
    state.downUntil = this.#now() + backoff
  }

  report(upstreams: readonly URL[]): UpstreamHealth[] {
    const now = this.#now()
    return upstreams.map((url) => {
      const s = this.#state(url)
      return {
        url: url.href,
        state: s.downUntil > now ? 'down' : 'up',
        consecutiveFailures: s.consecutiveFailures,
        retryInMs: Math.max(0, s.downUntil - now),
        lastError: s.lastError,
        requests: s.requests,
        failures: s.failures,
      }
    })
  }
}
