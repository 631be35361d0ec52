// src/integrity/json-object.ts
// The small JSON object around a position in a window of a large JSON document (an npm version's
// `dist`, a PEP 691 file entry): found by its braces and parsed alone, never the whole document.

const OPEN = 0x7b // {
const CLOSE = 0x7d // }
const QUOTE = 0x22 // "
const BACKSLASH = 0x5c // \

/** Braces tried, nearest first, before giving up: the objects sought are a few levels deep. */
const MAX_TRIES = 256

/**
 * The innermost object in `window` that contains position `at` and that `accept` maps to a value:
 * each `{` before `at`, nearest first, whose matching `}` lies at or after `at` is parsed on its
 * own and handed to `accept`. A `{` inside a string never yields a false object: inside a JSON
 * string every quote is escaped, so no substring of one parses as an object with keys. Undefined
 * when none is found within the window (an object larger than the window is not found).
 */
export function objectAround<T>(window: Buffer, at: number, accept: (value: Record<string, unknown>) => T | undefined): T | undefined {
  let tries = 0
  for (let open = window.lastIndexOf(OPEN, at); open >= 0 && tries < MAX_TRIES; open = open > 0 ? window.lastIndexOf(OPEN, open - 1) : -1) {
    tries++
    const close = matchingClose(window, open)
    if (close < at) continue
    let value: unknown
    try {
      value = JSON.parse(window.toString('utf8', open, close + 1))
    } catch {
      continue
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue
    const found = accept(value as Record<string, unknown>)
    if (found !== undefined) return found
  }
  return undefined
}

/** Where the `}` closing the `{` at `open` is, skipping strings; -1 when it is not in the window. */
function matchingClose(window: Buffer, open: number): number {
  let depth = 0
  let inString = false
  for (let i = open; i < window.length; i++) {
    const c = window[i]
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) inString = true
    else if (c === OPEN) depth++
    else if (c === CLOSE && --depth === 0) return i
  }
  return -1
}
