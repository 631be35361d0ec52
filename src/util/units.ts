// src/util/units.ts
// Parse and format human units ("512MiB", "30s") once, at the edge; everything inside works in Bytes and Ms.

const SIZE_UNITS: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['b', 1],
  ['kb', 1000],
  ['mb', 1000 ** 2],
  ['gb', 1000 ** 3],
  ['tb', 1000 ** 4],
  ['k', 1024],
  ['m', 1024 ** 2],
  ['g', 1024 ** 3],
  ['t', 1024 ** 4],
  ['kib', 1024],
  ['mib', 1024 ** 2],
  ['gib', 1024 ** 3],
  ['tib', 1024 ** 4],
])

const DURATION_UNITS: ReadonlyMap<string, number> = new Map([
  ['', 1000],
  ['ms', 1],
  ['s', 1000],
  ['m', 60_000],
  ['h', 3_600_000],
  ['d', 86_400_000],
])

// A non-negative decimal, one optional space, then letters. No sign, exponent or hex:
// Number() alone would accept "1e3", "0x10" and "" (as 0).
const AMOUNT = /^(\d+(?:\.\d+)?) ?([a-z]*)$/i

function parseAmount(text: string, units: ReadonlyMap<string, number>): number | undefined {
  const match = AMOUNT.exec(text)
  if (match === null) return undefined
  const [, digits = '', unit = ''] = match
  const factor = units.get(unit.toLowerCase())
  if (factor === undefined) return undefined
  const result = Math.round(Number(digits) * factor)
  return Number.isSafeInteger(result) ? result : undefined
}

/**
 * Parses a human byte size into a whole number of bytes, rounded to the nearest byte.
 *
 * A plain number is bytes. Units are case-insensitive: `B`; `KB`, `MB`, `GB`, `TB` are powers of
 * 1000; `KiB`, `MiB`, `GiB`, `TiB` and the bare `K`, `M`, `G`, `T` are powers of 1024. Decimals and
 * one space before the unit are allowed (`"1.5 GiB"`).
 *
 * @returns `undefined` for anything else: empty, negative, unknown unit, or a result beyond
 *   `Number.MAX_SAFE_INTEGER`.
 */
export function parseSize(text: string): number | undefined {
  return parseAmount(text, SIZE_UNITS)
}

/**
 * Parses a human duration into whole milliseconds, rounded to the nearest millisecond.
 *
 * Units are `ms`, `s`, `m` (minutes), `h` and `d`, case-insensitive; a plain number is seconds.
 * Decimals and one space before the unit are allowed (`"1.5h"`).
 *
 * @returns `undefined` for anything else: empty, negative, unknown unit, or a result beyond
 *   `Number.MAX_SAFE_INTEGER`.
 */
export function parseDuration(text: string): number | undefined {
  return parseAmount(text, DURATION_UNITS)
}

// Stops at TiB, the largest unit parseSize reads, so every output parses back.
const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const

/**
 * Formats a byte count with the largest binary unit that keeps the number at least 1, to at most
 * two decimals: `268435456` → `"256MiB"`, `1536` → `"1.5KiB"`, `100` → `"100B"`.
 * The result parses back with {@link parseSize} to within the rounding.
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return `${n}B`
  let value = n
  let index = 0
  while (value >= 1024 && index < BINARY_UNITS.length - 1) {
    value /= 1024
    index++
  }
  let rounded = Number(value.toFixed(2))
  // 1048575 is 1023.999KiB, which would print as "1024KiB".
  if (rounded >= 1024 && index < BINARY_UNITS.length - 1) {
    rounded = Number((rounded / 1024).toFixed(2))
    index++
  }
  return `${rounded}${BINARY_UNITS[index] ?? 'B'}`
}
