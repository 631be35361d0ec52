// src/policy/store-decision.ts
// What a fill keeps of a response, and whether it stores it: the header block a shared cache may
// keep, then the RFC 9111 §3 decision (canStore) and the checks on the announced body length. No I/O.

import type { CacheRule } from '../config.js'
import { getRaw, stripHopByHop, withoutFields, type RawHeaders } from '../http/headers.js'
import { canStore, fieldsNotStored, type ResponseFacts, type StoreDecision, type StoreRequest } from './freshness.js'

/** The store decision for a fill, with the body length the response announced. */
export type FillStoreDecision = StoreDecision & {
  /**
   * Content-Length as a number once §3 allows storing (possibly invalid when the decision is
   * `bad-length`); undefined when the response sent none or §3 already said no.
   */
  readonly totalBytes: number | undefined
}

/**
 * The fields a shared cache keeps of a response: hop-by-hop fields removed (RFC 9110 §7.6.1), and
 * those named by private="…" and no-cache="…" (RFC 9111 §5.2.2.4, §5.2.2.7). Order is kept.
 */
export function selectStoredHeaders(headers: RawHeaders): string[] {
  const hidden = fieldsNotStored(headers)
  return hidden.size === 0 ? stripHopByHop(headers) : withoutFields(stripHopByHop(headers), hidden)
}

/**
 * May a fill store this response? `facts.headers` is the header block to be stored. RFC 9111 §3
 * first (canStore), then the announced Content-Length: not a non-negative integer is `bad-length`,
 * more than `canFitBytes` accepts is `too-large`. A body without Content-Length is checked while
 * it arrives instead.
 */
export function decideStore(
  facts: ResponseFacts,
  request: StoreRequest,
  rule: CacheRule | undefined,
  canFitBytes: (bodyBytes: number) => boolean,
): FillStoreDecision {
  const decision = canStore(facts, request, rule)
  if (!decision.storable) return { ...decision, totalBytes: undefined }
  const length = getRaw(facts.headers, 'content-length')
  if (length === undefined) return { ...decision, totalBytes: undefined }
  const totalBytes = Number(length)
  if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) return { storable: false, reason: 'bad-length', totalBytes }
  if (!canFitBytes(totalBytes)) return { storable: false, reason: 'too-large', totalBytes }
  return { ...decision, totalBytes }
}
