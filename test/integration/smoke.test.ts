// test/integration/smoke.test.ts
// The first promise of the mirror: a fresh response is served from cache without the origin.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startOrigin } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { get } from '../helpers/client.js'

test('serves a fresh response from cache without contacting the origin', async (t) => {
  const origin = await startOrigin(t, (_req, res) => {
    // Without Date the apparent age is 0, so Age is exactly 0 (a whole-second Date can make it 1).
    res.sendDate = false
    res.setHeader('cache-control', 'max-age=60')
    res.end('hello')
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const first = await get(proxy.url('/a'))
  const second = await get(proxy.url('/a'))

  assert.equal(first.body.toString(), 'hello')
  assert.match(first.headers['cache-status'] ?? '', /^cachemir; fwd=miss; stored/)
  assert.equal(second.body.toString(), 'hello')
  assert.match(second.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(second.headers.age, '0')
  assert.equal(origin.count('/a'), 1)
})
