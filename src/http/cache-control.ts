// src/http/cache-control.ts
// Cache-Control parsing that survives odd input: case, quotes, duplicates, several header lines.

/** Directive name (lower case) -> value; `true` for a directive without a value. */
export type Directives = ReadonlyMap<string, string | true>

/** Directives whose duplicates resolve to the smallest value (the most restrictive). */
const SECONDS = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error', 'min-fresh', 'max-stale'])

/**
 * Parses one or more Cache-Control values (already joined with ", ").
 * Quoted values keep commas inside quotes. For duplicated delta-seconds directives the
 * smallest value wins; an invalid number is kept as-is so callers treat it as "stale".
 */
export function parseCacheControl(value: string | undefined): Directives {
  const out = new Map<string, string | true>()
  if (value === undefined || value === '') return out
  const re = /\s*([^=,\s]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?\s*(?:,|$)/gy
  let m: RegExpExecArray | null
  while (re.lastIndex < value.length && (m = re.exec(value)) !== null) {
    const name = (m[1] as string).toLowerCase()
    const raw = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]
    const next: string | true = raw === undefined || raw === '' ? (m[2] !== undefined ? '' : true) : raw
    const prev = out.get(name)
    if (prev !== undefined && SECONDS.has(name)) {
      const a = parseSeconds(prev)
      const b = parseSeconds(next)
      // An invalid duplicate poisons the directive: keep the invalid one (treated as stale).
      if (a === undefined) continue
      if (b === undefined || b < a) out.set(name, next)
      continue
    }
    out.set(name, next)
  }
  return out
}

/** delta-seconds (RFC 9111 §1.2.2): digits only; too-large values clamp to 2^31. */
export function parseSeconds(value: string | true | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d+$/.test(value)) return undefined
  const n = Number(value)
  return n > 2147483648 ? 2147483648 : n
}

/** The field names in a qualified no-cache/private value (`no-cache="set-cookie, x"`). */
export function qualifiedNames(value: string | true | undefined): string[] {
  if (typeof value !== 'string' || value === '') return []
  return value.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '')
}
