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
  for (const member of splitOutsideQuotes(value)) {
    const eq = member.indexOf('=')
    const name = (eq < 0 ? member : member.slice(0, eq)).trim().toLowerCase()
    if (name === '') continue
    let next: string | true = true
    if (eq >= 0) {
      const raw = member.slice(eq + 1).trim()
      next = raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2 ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw
    }
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

/** Splits on commas that are not inside a quoted string; members are trimmed, empty ones dropped. */
function splitOutsideQuotes(value: string): string[] {
  const out: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const c = value[i]
    if (c === '\\' && quoted) i++
    else if (c === '"') quoted = !quoted
    else if (c === ',' && !quoted) {
      out.push(value.slice(start, i).trim())
      start = i + 1
    }
  }
  out.push(value.slice(start).trim())
  return out.filter((m) => m !== '')
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
  return value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '')
}
