// bench/lib/big-cache.ts
// Writes many small cache entries straight into cachemir's on-disk layout (scenario 7), with the
// project's own encoder and path rules, so the files are the ones a fill would have committed.
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { bodyVersion, hashKey, LAYOUT_DIR } from '../../src/cache/disk-layout.js'
import { encodeMeta, type EntryMeta } from '../../src/cache/entry.js'
import { chunkBytes } from './util.js'

/** Route-relative URL of entry `i` (catch-all route `/`, so the key is the request path). */
export function entryPath(i: number): string {
  return `/big/${i}.bin`
}

/** Body bytes of entry `i`: 1–2 KiB. */
export function entryBytes(i: number): number {
  return 1024 + ((i * 37) % 1025)
}

/** Shared source of body bytes: entry i is a slice of it at an offset of its own. */
const POOL = chunkBytes(17, 0, 1024 * 1024)

/** The directory that holds entry files of a hash: <cacheDir>/cachemir-v1/objects/<first two hex>. */
export function bucketDir(cacheDir: string, hash: string): string {
  return join(cacheDir, LAYOUT_DIR, 'objects', hash.slice(0, 2))
}

/**
 * Writes entries [from, to) with synchronous I/O (run it in a child process). Each entry is a
 * body `<hash>.<id>.<bytes>.body` and a meta `<hash>.meta`, fresh for a day from `nowAt`.
 * Returns the body bytes written.
 */
export function writeEntries(cacheDir: string, from: number, to: number, nowAt: number): number {
  for (let b = 0; b < 256; b++) mkdirSync(bucketDir(cacheDir, b.toString(16).padStart(2, '0')), { recursive: true })
  const date = new Date(nowAt).toUTCString()
  let total = 0
  for (let i = from; i < to; i++) {
    const key = entryPath(i)
    const hash = hashKey(key)
    const bytes = entryBytes(i)
    const offset = (i * 4099) % (POOL.length - 4096)
    const body = POOL.subarray(offset, offset + bytes)
    const bodyFile = `${hash}.${bodyVersion(i.toString(16).padStart(12, '0'), bytes)}.body`
    const meta: EntryMeta = {
      v: 1,
      key,
      status: 200,
      statusText: 'OK',
      headers: [
        'content-type',
        'application/octet-stream',
        'cache-control',
        'public, max-age=86400',
        'etag',
        `"big-${i}"`,
        'content-length',
        String(bytes),
        'Date',
        date,
      ],
      requestAt: nowAt,
      responseAt: nowAt,
      storedAt: nowAt,
      bodyBytes: bytes,
      bodyFile,
      sha256: createHash('sha256').update(body).digest('hex'),
      vary: undefined,
    }
    const dir = bucketDir(cacheDir, hash)
    // Body first, then the meta that points at it: the order a commit uses.
    writeFileSync(join(dir, bodyFile), body)
    writeFileSync(join(dir, `${hash}.meta`), encodeMeta(meta))
    total += bytes
  }
  return total
}
