// bench/lib/cache-child.ts
// Child process for scenario 7, so heavy synchronous work never runs in the bench process:
//   node dist/bench/lib/cache-child.js create DIR FROM TO NOW_AT     writes entries [FROM, TO)
//   node --expose-gc dist/bench/lib/cache-child.js index-memory DIR MAX_DISK_BYTES
//       opens a DiskStore on DIR, runs its start-up scan, and reports the heap the index holds
// Each prints one JSON line on stdout.
import { pino } from 'pino'
import { DiskStore } from '../../src/cache/disk-store.js'
import { writeEntries } from './big-cache.js'

const [mode, dir, ...rest] = process.argv.slice(2)

interface Memory {
  heapUsed: number
  external: number
  arrayBuffers: number
  rss: number
}

function settled(): Memory {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with --expose-gc')
  for (let i = 0; i < 3; i++) gc()
  const m = process.memoryUsage()
  return { heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss }
}

async function indexMemory(cacheDir: string, maxDiskBytes: number): Promise<unknown> {
  const store = await DiskStore.open(cacheDir, maxDiskBytes, pino({ enabled: false }), () => {})
  const before = settled()
  const t0 = performance.now()
  const result = await store.scan()
  const scanMs = performance.now() - t0
  const after = settled()
  const entries = store.index.entries
  const per = (k: keyof Memory): number => (after[k] - before[k]) / Math.max(1, entries)
  return {
    entries,
    removedFiles: result.removedFiles,
    scanMs,
    before,
    after,
    heapBytesPerEntry: per('heapUsed'),
    externalBytesPerEntry: per('external'),
    rssBytesPerEntry: per('rss'),
    // Keeps the store reachable until after the second reading.
    indexComplete: store.index.complete,
  }
}

let out: unknown
if (mode === 'create' && dir !== undefined) {
  const [from, to, nowAt] = rest.map(Number) as [number, number, number]
  const t0 = performance.now()
  const bytes = writeEntries(dir, from, to, nowAt)
  out = { entries: to - from, bytes, ms: performance.now() - t0 }
} else if (mode === 'index-memory' && dir !== undefined) {
  out = await indexMemory(dir, Number(rest[0]))
} else {
  console.error('usage: cache-child.js create DIR FROM TO NOW_AT | index-memory DIR MAX_DISK_BYTES')
  process.exit(2)
}
process.stdout.write(`${JSON.stringify(out)}\n`)
