// test/integration/node-name.test.ts
// The node name (--name) is the member name of every Cache-Status the mirror writes: hits, fills,
// errors and the admin room's answers alike; the default is `cachemir`.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { get } from '../helpers/client.js'
import { sendBody, startOrigin } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'

test('every Cache-Status carries the configured node name', async (t) => {
  const origin = await startOrigin(t, (req, res) =>
    req.url === '/down'
      ? void res.socket?.destroy()
      : sendBody(req, res, Buffer.from('named'), { headers: { 'cache-control': 'max-age=60' } }),
  )
  const proxy = await startProxy(t, { upstream: origin.url, name: 'edge-1' })

  const miss = await get(proxy.url('/a'))
  assert.equal(miss.headers['cache-status'], 'edge-1; fwd=miss; stored')
  const hit = await get(proxy.url('/a'))
  assert.match(hit.headers['cache-status'] ?? '', /^edge-1; hit; ttl=\d+$/)
  const failed = await get(proxy.url('/down'))
  assert.equal(failed.status, 502)
  assert.equal(failed.headers['cache-status'], 'edge-1; fwd=miss')
  const refused = await get(proxy.url('/a%2fb'))
  assert.equal(refused.status, 400)
  assert.equal(refused.headers['cache-status'], 'edge-1')
  const admin = await get(proxy.url('/_cachemir/nothing'))
  assert.equal(admin.status, 404)
  assert.equal(admin.headers['cache-status'], 'edge-1')
  assert.equal(origin.count('/a'), 1)
})

test('without --name the member is "cachemir"', async (t) => {
  const origin = await startOrigin(t, (req, res) => sendBody(req, res, Buffer.from('x'), { headers: { 'cache-control': 'max-age=60' } }))
  const proxy = await startProxy(t, { upstream: origin.url })
  assert.equal((await get(proxy.url('/a'))).headers['cache-status'], 'cachemir; fwd=miss; stored')
})
