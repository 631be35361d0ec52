// test/integration/disk-scan.test.ts
// The start-up scan, driven on a DiskStore over files written in the on-disk layout: it indexes
// every entry and gives way to other work while it runs, even inside one large bucket.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { pino } from 'pino'
import { bodyVersion, hashKey, LAYOUT_DIR } from '../../src/cache/disk-layout.js'
import { DiskStore } from '../../src/cache/disk-store.js'
import { encodeMeta, type EntryMeta } from '../../src/cache/entry.js'
import { makeTempDir } from '../helpers/temp-dir.js'

const silent = pino({ enabled: false })

/** Writes one committed entry (body, then meta) for `key`; returns its hash and version. */
async function writeEntry(cacheDir: string, key: string, id: string): Promise<{ hash: string; version: string }> {
  const hash = hashKey(key)
  const body = Buffer.from(`body of ${key}`)
  const version = bodyVersion(id, body.length)
  const bodyFile = `${hash}.${version}.body`
  const meta: EntryMeta = {
    v: 1,
    key,
    status: 200,
    statusText: 'OK',
    headers: ['cache-control', 'max-age=3600'],
    requestAt: 0,
    responseAt: 0,
    storedAt: 0,
    bodyBytes: body.length,
    bodyFile,
    sha256: createHash('sha256').update(body).digest('hex'),
    vary: undefined,
  }
  const dir = join(cacheDir, LAYOUT_DIR, 'objects', hash.slice(0, 2))
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, bodyFile), body)
  await writeFile(join(dir, `${hash}.meta`), encodeMeta(meta))
  return { hash, version }
}

test('the scan indexes every entry under its hex hash and body version', async (t) => {
  const cacheDir = await makeTempDir(t, 'cachemir-scan-')
  const written = []
  for (let i = 0; i < 500; i++) written.push(await writeEntry(cacheDir, `/pkg/${i}.txt`, (0xabc000 + i).toString(16)))
  const store = await DiskStore.open(cacheDir, 1024 ** 3, silent, () => {})

  const result = await store.scan()

  assert.equal(result.entries, 500)
  assert.equal(result.removedFiles, 0)
  assert.equal(store.index.complete, true)
  for (const { hash, version } of written) assert.equal(store.index.get(hash), version)
  assert.deepEqual(new Set(store.index.hashes()), new Set(written.map((w) => w.hash)))
})

test('the scan lets other callbacks run while it indexes one large bucket', async (t) => {
  const cacheDir = await makeTempDir(t, 'cachemir-scan-')
  // 300 keys whose hashes share one bucket, so a single listing holds them all.
  let entries = 0
  for (let i = 0; entries < 300; i++) {
    if (!hashKey(`/one-bucket/${i}`).startsWith('00')) continue
    await writeEntry(cacheDir, `/one-bucket/${i}`, i.toString(16))
    entries++
  }
  const store = await DiskStore.open(cacheDir, 1024 ** 3, silent, () => {})
  const seen = new Set<number>()
  let scanning = true
  const poll = (): void => {
    seen.add(store.index.entries)
    if (scanning) setImmediate(poll)
  }
  poll()

  const result = await store.scan()
  scanning = false

  assert.equal(result.entries, 300)
  // Counts strictly between none and all were observed: the bucket was not indexed in one go.
  assert.ok(
    [...seen].some((n) => n > 0 && n < 300),
    `index sizes seen during the scan: ${[...seen].join(', ')}`,
  )
})
