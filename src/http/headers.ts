// src/http/headers.ts
// Header helpers shared by everyone: raw header lists, hop-by-hop removal, dates, list parsing.

/**
 * A response header block as it arrived: a flat list `[name, value, name, value, …]`,
 * names in their original case and order. Stored and replayed byte for byte.
 */
export type RawHeaders = readonly string[]

/** RFC 9110 §7.6.1: connection-specific fields that are never stored or forwarded. The one list of them. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** Splits a comma-separated field value into trimmed, non-empty members. Quoted commas are not special here. */
export function splitList(value: string): string[] {
  const out: string[] = []
  for (const part of value.split(',')) {
    const item = part.trim()
    if (item !== '') out.push(item)
  }
  return out
}

/** All values of `name` (case-insensitive) joined with ", ", or undefined when absent. */
export function getRaw(headers: RawHeaders, name: string): string | undefined {
  let out: string | undefined
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() === name) {
      const value = headers[i + 1] as string
      out = out === undefined ? value : `${out}, ${value}`
    }
  }
  return out
}

/** Removes hop-by-hop fields and every field named in Connection (RFC 9110 §7.6.1). */
export function stripHopByHop(headers: RawHeaders): string[] {
  const named = new Set<string>()
  const connection = getRaw(headers, 'connection')
  if (connection !== undefined) for (const n of splitList(connection)) named.add(n.toLowerCase())
  const out: string[] = []
  for (let i = 0; i < headers.length; i += 2) {
    const lower = (headers[i] as string).toLowerCase()
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue
    out.push(headers[i] as string, headers[i + 1] as string)
  }
  return out
}

/** Returns `headers` without the fields whose lower-case names are in `drop`. */
export function withoutFields(headers: RawHeaders, drop: ReadonlySet<string>): string[] {
  const out: string[] = []
  for (let i = 0; i < headers.length; i += 2) {
    if (drop.has((headers[i] as string).toLowerCase())) continue
    out.push(headers[i] as string, headers[i + 1] as string)
  }
  return out
}

/** Converts undici's raw `Buffer[]` header list to strings (latin1 keeps every byte). */
export function rawFromBuffers(list: readonly (Buffer | string)[]): string[] {
  const out = new Array<string>(list.length)
  for (let i = 0; i < list.length; i++) {
    const item = list[i] as Buffer | string
    out[i] = typeof item === 'string' ? item : item.toString('latin1')
  }
  return out
}

/** Parses an HTTP-date (RFC 9110 §5.6.7, including the obsolete forms Date.parse accepts) to epoch ms. */
export function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const ms = Date.parse(value)
  return Number.isFinite(ms) ? ms : undefined
}

export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString()
}

/** Incoming request header value as a single string (arrays joined with ", "). */
export function headerValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  return Array.isArray(value) ? value.join(', ') : value
}

/** The lower-case header names a Vary value lists (duplicates removed, sorted); undefined for none. */
export function varyNames(vary: string | undefined): string[] | undefined {
  if (vary === undefined) return undefined
  const names = [
    ...new Set(
      vary
        .split(',')
        .map((n) => n.trim().toLowerCase())
        .filter((n) => n !== ''),
    ),
  ].sort()
  return names.length === 0 ? undefined : names
}
