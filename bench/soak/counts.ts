// bench/soak/counts.ts
// Tallies by name (statuses, cache outcomes, flaky plans, log messages) and their one-line form.

export type Counts = Record<string, number>

export function inc(counts: Counts, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1
}

/** `name count, …`, largest first; at most `limit` names, then how many more. */
export function formatCounts(c: Counts, limit = 12): string {
  const entries = Object.entries(c).sort((a, b) => b[1] - a[1])
  const shown = entries.slice(0, limit).map(([k, v]) => `${k} ${v}`)
  if (entries.length > limit) shown.push(`… ${entries.length - limit} more`)
  return shown.length === 0 ? '-' : shown.join(', ')
}
