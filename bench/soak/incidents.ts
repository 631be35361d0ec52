// bench/soak/incidents.ts
// What the flaky origin did, and when: tells the clients' expected errors from bugs.

/** An origin cut explains a client's broken body if it happened in [start - before, end + after]. */
const CUT_SLACK_BEFORE_MS = 500
const CUT_SLACK_AFTER_MS = 1000

export class Incidents {
  readonly #cuts = new Map<string, number[]>()
  readonly #statuses = new Map<string, number[]>()
  /** Connection-refused windows; `to` is Infinity while one is open. */
  readonly refusals: { from: number; to: number }[] = []
  cuts = 0
  statuses = 0

  /** The origin cut this path's body short (abort, stall, or listener closed) at `at`. */
  addCut(path: string, at: number): void {
    this.cuts++
    push(this.#cuts, path, at)
  }

  /** The origin answered this path with a 5xx at `at`. */
  addStatus(path: string, at: number): void {
    this.statuses++
    push(this.#statuses, path, at)
  }

  explainsCut(path: string, from: number, to: number): boolean {
    return within(this.#cuts.get(path), from - CUT_SLACK_BEFORE_MS, to + CUT_SLACK_AFTER_MS)
  }

  explainsStatus(path: string, from: number, to: number): boolean {
    return within(this.#statuses.get(path), from - CUT_SLACK_BEFORE_MS, to + CUT_SLACK_AFTER_MS)
  }

  /** Milliseconds from `t` to this path's nearest cut (negative: before), for diagnosis. */
  nearestCut(path: string, t: number): number | null {
    let best: number | null = null
    for (const at of this.#cuts.get(path) ?? []) if (best === null || Math.abs(at - t) < Math.abs(best)) best = at - t
    return best
  }

  explainsRefusal(from: number, to: number): boolean {
    return this.refusals.some((w) => w.from <= to + CUT_SLACK_AFTER_MS && w.to >= from - CUT_SLACK_BEFORE_MS)
  }
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  const list = map.get(key)
  if (list === undefined) map.set(key, [value])
  else list.push(value)
}

function within(times: readonly number[] | undefined, from: number, to: number): boolean {
  return times?.some((t) => t >= from && t <= to) ?? false
}
