// test/faults/relay.test.ts
// A fill that stops caching (its body outgrew the disk budget) relays the rest from memory,
// paced by its readers: one stalled reader must not freeze the others for long.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { get, getFirstBytes } from '../helpers/client.js'
import { makeBody, sendBody, sha256, startOrigin } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { MiB } from '../helpers/sizes.js'
import { within } from '../helpers/wait.js'

test('a stalled reader of a relaying fill is cut after the idle timeout and the other readers finish', async (t) => {
  // 24 MiB without Content-Length: the fill only learns it is too big for the 1 MiB budget on the way.
  const body = makeBody(24 * MiB, 11)
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, body, { contentLength: false, headers: { 'cache-control': 'max-age=600' }, bytesPerSecond: 48 * MiB }),
  )
  const proxy = await startProxy(t, { upstream: origin.url, maxDisk: '1MiB', idleTimeout: '500ms' })

  // The stalled client takes the first bytes and then stops reading for good.
  const stalled = await getFirstBytes(proxy.url('/big'), 1)
  const healthy = await within(get(proxy.url('/big')), 20_000, 'the healthy reader to finish despite a stalled one')

  assert.equal(healthy.status, 200)
  assert.equal(healthy.complete, true)
  assert.equal(sha256(healthy.body), sha256(body))
  const rest = await within(stalled.rest(), 20_000, 'the stalled reader to be cut')
  assert.equal(rest.complete, false, 'the stalled reader is cut short, never ended cleanly')
  assert.ok(rest.body.length < body.length)
  // Nothing was stored: the next request goes to the origin again.
  const again = await get(proxy.url('/big'))
  assert.equal(sha256(again.body), sha256(body))
  assert.equal(origin.count('/big'), 2)
})
