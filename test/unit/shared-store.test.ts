// test/unit/shared-store.test.ts
// Two stores on one cache directory, as the workers of `serve --workers N` have them, with the
// change messages between them delivered by hand: a purge in one hides the URL's variants in the
// other until it is done, and a store with an old view never deletes a newer entry.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { TieredStore } from '../../src/cache/tiered-store.js'
import type { StoreChange } from '../../src/cache/worker-sync.js'
import type { EntryMeta, EntryMetaDraft } from '../../src/cache/entry.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { makeBody } from '../helpers/origin.js'

const log = pino({ level: 'silent' })

/** Two stores on `dir`; what `a` announces is queued for `b` until `deliver()`. */
async function pair(dir: string): Promise<{ a: TieredStore; b: TieredStore; deliver: () => void }> {
  const queue: StoreChange[] = []
  const options = { cacheDir: dir, maxDiskBytes: 64 * 1024 * 1024, maxMemoryBytes: 64 * 1024, log }
  const a = await TieredStore.open({ ...options, onChange: (change) => queue.push(change) })
  const b = await TieredStore.open(options)
  return { a, b, deliver: () => queue.splice(0).forEach((change) => b.applyChange(change)) }
}

async function put(store: TieredStore, key: string, body: Buffer, previous?: EntryMeta): Promise<EntryMeta> {
  const temp = await store.createTemp(key)
  await temp.fh.write(body, 0, body.length, 0)
  const now = Date.now()
  const meta: EntryMetaDraft = {
    v: 1,
    key,
    status: 200,
    statusText: 'OK',
    headers: ['Cache-Control', 'max-age=600'],
    requestAt: now,
    responseAt: now,
    storedAt: now,
    bodyBytes: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    vary: undefined,
  }
  const stored = await store.commit(temp, meta, previous, undefined)
  await temp.fh.close()
  return stored.meta
}

test('while another worker purges a URL, its Vary record is not read until the purge is done', async (t) => {
  const { a, b, deliver } = await pair(await makeTempDir(t))
  await a.setVaryNames('/v', ['accept-encoding'])
  assert.deepEqual(await b.varyFor('/v'), { names: ['accept-encoding'], generation: 0 })

  const purged = a.purge('/v')
  deliver() // the purge has begun: b must not answer from generation 0 any more
  let settled = false
  const seen = b.varyFor('/v').then((marker) => ((settled = true), marker))
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(settled, false, 'b waits while a is purging')
  await purged
  deliver() // done
  const marker = await seen
  assert.equal(marker.generation, 1, 'b reads the new generation, never the retired one')
})

test('a worker whose view is out of date never deletes the entry another worker stored since', async (t) => {
  const dir = await makeTempDir(t)
  const { a, b, deliver } = await pair(dir)
  const v1 = makeBody(10_000, 1)
  const v2 = makeBody(10_000, 2)
  const meta1 = await put(a, '/obj', v1)
  deliver()
  const seenByB = await b.lookup('/obj')
  assert.equal(seenByB?.meta.bodyFile, meta1.bodyFile)

  // a stores a new version (removing v1's body); b has not heard of it yet and tries v1.
  const meta2 = await put(a, '/obj', v2, meta1)
  assert.equal(await b.openBody(seenByB), undefined, 'v1 is gone')

  deliver()
  const fromA = await a.lookup('/obj')
  assert.equal(fromA?.meta.bodyFile, meta2.bodyFile, 'a still has v2')
  const fromB = await b.lookup('/obj')
  assert.equal(fromB?.meta.bodyFile, meta2.bodyFile, 'b finds v2 on disk')
  const bucket = join(dir, 'cachemir-v1', 'objects', fromA.hash.slice(0, 2))
  const files = (await readdir(bucket)).filter((n) => !n.startsWith('.tmp-')).sort()
  assert.deepEqual(files, [meta2.bodyFile, `${fromA?.hash}.meta`].sort())
})
