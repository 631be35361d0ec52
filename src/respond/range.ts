// src/respond/range.ts
// Range and If-Range (RFC 9110 §14) against a representation of known length.

import { getRaw, parseHttpDate, type RawHeaders } from '../http/headers.js'
import { strongMatch } from './conditional.js'

/** Inclusive byte range. */
export interface ByteRange {
  readonly start: number
  readonly end: number
}

export type RangeDecision =
  { readonly kind: 'full' } | { readonly kind: 'unsatisfiable' } | { readonly kind: 'partial'; readonly ranges: readonly ByteRange[] }

/** More ranges than this, or overlapping ones, and we send the whole representation (RFC 9110 §14.2 allows it). */
const MAX_RANGES = 16

/** Decides what to send for a request's Range and If-Range headers. Unparseable ranges are ignored (full). */
export function evaluateRange(range: string | undefined, ifRange: string | undefined, size: number, stored: RawHeaders): RangeDecision {
  if (range === undefined) return { kind: 'full' }
  if (ifRange !== undefined && !ifRangeHolds(ifRange, stored)) return { kind: 'full' }
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(range)
  if (m === null) return { kind: 'full' }
  const ranges: ByteRange[] = []
  let specs = 0
  for (const part of (m[1] as string).split(',')) {
    const spec = part.trim()
    if (spec === '') continue
    specs++
    const r = /^(\d*)-(\d*)$/.exec(spec)
    if (r === null || (r[1] === '' && r[2] === '')) return { kind: 'full' }
    let start: number
    let end: number
    if (r[1] === '') {
      const suffix = Number(r[2])
      if (suffix === 0) continue
      start = Math.max(0, size - suffix)
      end = size - 1
    } else {
      start = Number(r[1])
      end = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1)
      if (r[2] !== '' && Number(r[2]) < start) return { kind: 'full' }
    }
    if (start >= size || end < start) continue
    ranges.push({ start, end })
  }
  if (specs === 0) return { kind: 'full' }
  if (ranges.length === 0) return { kind: 'unsatisfiable' }
  if (ranges.length > MAX_RANGES) return { kind: 'full' }
  const sorted = [...ranges].sort((a, b) => a.start - b.start)
  for (let i = 1; i < sorted.length; i++) {
    if ((sorted[i] as ByteRange).start <= (sorted[i - 1] as ByteRange).end + 1) return { kind: 'full' }
  }
  return { kind: 'partial', ranges }
}

/** RFC 9110 §13.1.5: If-Range holds for a strong ETag match or an exactly equal Last-Modified. */
function ifRangeHolds(ifRange: string, stored: RawHeaders): boolean {
  const value = ifRange.trim()
  if (value.startsWith('"') || value.startsWith('W/')) {
    const etag = getRaw(stored, 'etag')
    return etag !== undefined && strongMatch(value, etag)
  }
  const date = parseHttpDate(value)
  const lastModified = parseHttpDate(getRaw(stored, 'last-modified'))
  return date !== undefined && lastModified !== undefined && date === lastModified
}
