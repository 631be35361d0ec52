// src/commands/cache-dir.ts
// `cachemir ls` and `cachemir verify`: read a cache directory itself (the running server's or a
// stopped one's). ls lists what it holds; verify streams every stored body through its digest,
// removes the damaged entries, and names each.

import { createHash } from 'node:crypto'
import { pino } from 'pino'
import { DiskStore } from '../cache/disk-store.js'
import type { EntryMeta } from '../cache/entry.js'
import { urlKeyOf } from '../proxy/cache-key.js'

async function openStore(cacheDir: string): Promise<DiskStore> {
  return DiskStore.open(cacheDir, Number.MAX_SAFE_INTEGER, pino({ level: 'silent' }), () => {})
}

export interface Listed {
  readonly url: string
  readonly status: number
  readonly bytes: number
  readonly storedAt: string
}

/** Every entry under `prefix` (the URL key's start), sorted by URL. */
export async function listEntries(cacheDir: string, prefix = ''): Promise<Listed[]> {
  const store = await openStore(cacheDir)
  const out: Listed[] = []
  for await (const { meta } of store.list()) {
    const url = urlKeyOf(meta.key)
    if (!url.startsWith(prefix)) continue
    out.push({ url: displayKey(meta), status: meta.status, bytes: meta.bodyBytes, storedAt: new Date(meta.storedAt).toISOString() })
  }
  return out.sort((a, b) => a.url.localeCompare(b.url))
}

/** The key as a person reads it: a variant's or representation's key shows its selector after `;`. */
function displayKey(meta: EntryMeta): string {
  return meta.key.split('\u0000').join(' ; ')
}

export interface VerifyReport {
  readonly checked: number
  readonly damaged: readonly { readonly url: string; readonly reason: string }[]
}

/** Checks every body's length and sha256, streaming; removes each damaged entry. */
export async function verifyCache(cacheDir: string, onProgress?: (checked: number) => void): Promise<VerifyReport> {
  const store = await openStore(cacheDir)
  const damaged: { url: string; reason: string }[] = []
  let checked = 0
  for await (const { hash, meta } of store.list()) {
    const reason = await damageOf(store, hash, meta)
    checked++
    onProgress?.(checked)
    if (reason === undefined) continue
    damaged.push({ url: displayKey(meta), reason })
    await store.removeIfCurrent(hash, meta)
  }
  return { checked, damaged }
}

async function damageOf(store: DiskStore, hash: string, meta: EntryMeta): Promise<string | undefined> {
  let fh
  try {
    fh = await store.openBody(hash, meta)
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  }
  try {
    const digest = createHash('sha256')
    let bytes = 0
    for await (const chunk of fh.createReadStream({ highWaterMark: 1024 * 1024, autoClose: false })) {
      digest.update(chunk as Buffer)
      bytes += (chunk as Buffer).length
    }
    if (bytes !== meta.bodyBytes) return `length ${bytes}, expected ${meta.bodyBytes}`
    return digest.digest('hex') === meta.sha256 ? undefined : 'sha256 mismatch'
  } finally {
    await fh.close().catch(() => {})
  }
}

/**
 * `purge --offline`: removes the entries of a stopped server's cache directory whose URL is one of
 * `paths`, lies under `prefix`, or all of them; returns how many. Each entry goes the way the
 * running store removes one (DiskStore.removeIfCurrent).
 */
export async function purgeOffline(
  cacheDir: string,
  which: { paths?: readonly string[]; prefix?: string; all?: boolean },
): Promise<number> {
  const store = await openStore(cacheDir)
  const paths = new Set(which.paths ?? [])
  let removed = 0
  for await (const { hash, meta } of store.list()) {
    const url = urlKeyOf(meta.key)
    const chosen = which.all === true || paths.has(url) || (which.prefix !== undefined && url.startsWith(which.prefix))
    if (chosen && (await store.removeIfCurrent(hash, meta))) removed++
  }
  return removed
}
