// src/commands/stats.ts
// `cachemir stats`: the running mirror's figures (/_cachemir/stats), one line per sample.

import { adminRequest, type ServerTarget } from './admin-client.js'

type Stats = Record<string, { readonly labels: Record<string, string | number>; readonly value: number }[]>

export async function formatStats(target: ServerTarget): Promise<string> {
  const stats = (await adminRequest(target, 'stats', 'GET')) as Stats
  const lines: string[] = []
  for (const [name, samples] of Object.entries(stats)) {
    for (const sample of samples) {
      const labels = Object.entries(sample.labels)
        .filter(([key]) => key !== 'le')
        .map(([key, value]) => `${key}=${String(value)}`)
        .join(' ')
      if ('le' in sample.labels) continue
      lines.push(`${name}${labels === '' ? '' : ` ${labels}`}: ${sample.value}`)
    }
  }
  return lines.join('\n')
}
