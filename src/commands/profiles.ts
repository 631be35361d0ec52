// src/commands/profiles.ts
// `cachemir profiles`: each ecosystem profile, and its rules in the order they are tried.

import { PROFILES } from '../profiles/profiles.js'

export function formatProfiles(): string {
  const lines: string[] = []
  for (const profile of PROFILES.values()) {
    lines.push(`${profile.name}: ${profile.summary}`)
    for (const r of profile.rules) {
      const ttl = r.ttlMs === undefined ? '' : ` ttl=${Math.round(r.ttlMs / 1000)}s`
      lines.push(`  ${r.mode}${ttl}  ${r.pattern.source}  (${r.why ?? ''})`)
    }
    if (profile.variantOf !== undefined) lines.push('  cached apart: the representations the Accept header selects')
    if (profile.rewrites !== undefined) lines.push('  rewritten: upstream URLs in served metadata point at the mirror')
    lines.push('')
  }
  lines.push("A route's own rules are tried before its profile's; no match means the standard HTTP rules.")
  return lines.join('\n')
}
