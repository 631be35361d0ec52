// test/cli/upstream-auth.test.ts
// `cachemir serve` with a private route: the secret comes from the environment, reaches the
// upstream, and is never printed (log lines, start-up errors).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cacheStatus, get } from '../helpers/client.js'
import { serveStatic, startOrigin } from '../helpers/origin.js'
import { runCli, startProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'

const SECRET = 'sekrit-cli-5b2d8e'

test('serve sends the token from the environment upstream and prints it nowhere, even at debug level', async (t) => {
  const origin = await startOrigin(t, serveStatic({ '/pkg': { body: 'package', headers: { 'cache-control': 'max-age=60' } } }))
  const dir = await makeTempDir(t)
  const file = join(dir, 'cachemir.json')
  const route = {
    prefix: '/',
    upstreams: [`${origin.url}/`],
    upstreamAuth: { env: 'PRIVATE_TOKEN', scheme: 'Bearer' },
    shareAuthenticated: true,
  }
  await writeFile(file, JSON.stringify({ routes: [route] }))
  const proxy = await startProxyProcess(t, ['--config', file, '--cache-dir', join(dir, 'cache'), '--log-level', 'debug'], {
    PRIVATE_TOKEN: SECRET,
  })

  const res = await get(proxy.url('/pkg'))
  const health = await get(proxy.url('/_cachemir/health'))
  assert.equal(await proxy.kill('SIGTERM'), 0)

  assert.equal(res.body.toString(), 'package')
  assert.equal(cacheStatus(res), 'cachemir; fwd=miss; stored')
  assert.equal(origin.requests[0]?.headers.authorization, `Bearer ${SECRET}`)
  assert.match(proxy.output(), /"msg":"request completed"/)
  assert.ok(!proxy.output().includes(SECRET), proxy.output())
  assert.ok(!health.body.toString().includes(SECRET))
})

test("an unset variable exits 2 with one line naming the route's field and the variable, and no other route's secret", async (t) => {
  const dir = await makeTempDir(t)
  const file = join(dir, 'cachemir.json')
  const routes = [
    { prefix: '/a/', upstreams: ['http://127.0.0.1:1/'], upstreamAuth: { env: 'PRIVATE_TOKEN' } },
    { prefix: '/b/', upstreams: ['http://127.0.0.1:1/'], upstreamAuth: { env: 'MISSING_TOKEN', header: 'X-Api-Key' } },
  ]
  await writeFile(file, JSON.stringify({ routes }))

  const result = await runCli(['serve', '--listen', '127.0.0.1:0', '--cache-dir', join(dir, 'cache'), '--config', file], {
    PRIVATE_TOKEN: SECRET,
  })

  assert.equal(result.code, 2)
  assert.equal(result.stdout, '')
  assert.equal(
    result.stderr,
    `cachemir: ${file}: routes[1].upstreamAuth.env: expected the environment variable MISSING_TOKEN to hold the credential, got an unset variable\n`,
  )
})
