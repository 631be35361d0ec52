// bench/soak/client-stats.ts
// What the clients saw: counters, errors (explained or not) and samples for diagnosis.

import type { Counts } from './counts.js'

/** Samples kept of each kind (lost objects, unexplained errors). */
const MAX_SAMPLES = 20
/** Latencies kept for the percentiles; a very long soak stops adding past this. */
const MAX_DURATIONS = 500_000

export interface ErrorCount {
  count: number
  /** Errors matched to something the flaky origin did at that time. */
  explained: number
}

export interface ClientStats {
  requests: number
  readonly byStatus: Counts
  readonly byCache: Counts
  readonly byCacheDetail: Counts
  readonly byAction: Counts
  readonly errors: Record<string, ErrorCount>
  verifiedBytes: number
  verifiedResponses: number
  headChecked: number
  notModified: number
  clientCancels: number
  cancelledAtEnd: number
  lost: number
  readonly lostSamples: object[]
  /** The first few errors nothing the origin did explains, for diagnosis. */
  readonly unexplainedSamples: object[]
  readonly durationsMs: number[]
}

export function newClientStats(): ClientStats {
  return {
    requests: 0,
    byStatus: {},
    byCache: {},
    byCacheDetail: {},
    byAction: {},
    errors: {},
    verifiedBytes: 0,
    verifiedResponses: 0,
    headChecked: 0,
    notModified: 0,
    clientCancels: 0,
    cancelledAtEnd: 0,
    lost: 0,
    lostSamples: [],
    unexplainedSamples: [],
    durationsMs: [],
  }
}

/** One error of `kind`; `sample` is called only when it is unexplained and samples are still kept. */
export function addError(stats: ClientStats, kind: string, explained: boolean, sample: () => object): void {
  const e = (stats.errors[kind] ??= { count: 0, explained: 0 })
  e.count++
  if (explained) e.explained++
  else if (stats.unexplainedSamples.length < MAX_SAMPLES) stats.unexplainedSamples.push({ kind, ...sample() })
}

/** A complete response whose bytes differ from the origin's. */
export function addLost(stats: ClientStats, sample: () => object): void {
  stats.lost++
  if (stats.lostSamples.length < MAX_SAMPLES) stats.lostSamples.push(sample())
}

/** A body (or slice) whose length and sha256 match the origin's. */
export function addVerified(stats: ClientStats, bytes: number, durationMs: number): void {
  stats.verifiedResponses++
  stats.verifiedBytes += bytes
  if (stats.durationsMs.length < MAX_DURATIONS) stats.durationsMs.push(durationMs)
}
