// test/cli/robustness.test.ts
// A real cachemir process survives clients that misbehave at the socket level: an upgrade
// request (WebSocket handshake) to a path the mirror refuses, followed by a connection reset,
// must never crash the process (an upgraded socket has no error listener unless we add one).
// Upgrades under /_cachemir/ are the mirror's own namespace and never reach the origin.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { get, rawRequest } from '../helpers/client.js'
import { startOrigin } from '../helpers/origin.js'
import type { Origin } from '../helpers/origin.js'
import { startProxyProcess } from '../helpers/proxy.js'
import type { ProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { WAIT_MS, within } from '../helpers/wait.js'

/** Enough resets that a missing socket error listener reliably crashes the process. */
const RESETS = 50

function upgradeRequest(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: mirror.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`
}

/** Connects, writes the upgrade request and resets the connection at once (RST, not FIN). */
async function upgradeThenReset(mirror: ProxyProcess, path: string): Promise<void> {
  const socket = connect({ port: mirror.port, host: '127.0.0.1' })
  socket.on('error', () => {})
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
  } catch (err) {
    const exited = await Promise.race([mirror.exited, sleep(500).then(() => 'still running')])
    assert.fail(`cannot connect to the mirror (${String(err)}); process: ${exited}; output:\n${mirror.output()}`)
  }
  socket.write(upgradeRequest(path))
  socket.resetAndDestroy()
}

/** Writes the upgrade request, resets the connection as soon as the answer starts; returns that answer. */
async function upgradeThenResetOnAnswer(mirror: ProxyProcess, path: string): Promise<string> {
  const socket = connect({ port: mirror.port, host: '127.0.0.1' })
  socket.on('error', () => {})
  const answer = await within(
    new Promise<string | undefined>((resolve) => {
      socket.once('connect', () => socket.write(upgradeRequest(path)))
      socket.once('data', (chunk: Buffer) => {
        socket.resetAndDestroy()
        resolve(chunk.toString('latin1'))
      })
      socket.once('close', () => resolve(undefined))
    }),
    WAIT_MS,
    `an answer to the upgrade of ${path}`,
  )
  if (answer === undefined) {
    const exited = await Promise.race([mirror.exited, sleep(500).then(() => 'still running')])
    assert.fail(`no answer to the upgrade of ${path}; process: ${exited}; output:\n${mirror.output()}`)
  }
  return answer
}

async function startMirror(t: TestContext): Promise<{ origin: Origin; mirror: ProxyProcess }> {
  const origin = await startOrigin(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' })
    res.end(`origin says ${req.url ?? ''}`)
  })
  const cacheDir = await makeTempDir(t, 'cachemir-robust-cli-')
  const mirror = await startProxyProcess(t, ['--upstream', origin.url, '--cache-dir', cacheDir])
  return { origin, mirror }
}

/** The process has not exited and still answers a normal GET (proxied to the origin). */
async function assertAliveAndServing(mirror: ProxyProcess, origin: Origin, path: string): Promise<void> {
  // Give a crash that a reset would cause time to happen before we look.
  await sleep(200)
  const exited = await Promise.race([mirror.exited, sleep(300).then(() => 'still running' as const)])
  assert.equal(exited, 'still running', `the mirror process exited; output:\n${mirror.output()}`)
  const before = origin.count(path)
  const r = await within(get(mirror.url(path)), WAIT_MS, 'a normal GET after the resets')
  assert.equal(r.status, 200)
  assert.equal(r.body.toString(), `origin says ${path}`)
  assert.equal(origin.count(path), before + 1)
  assert.equal(mirror.child.exitCode, null, `output:\n${mirror.output()}`)
  assert.equal(mirror.child.signalCode, null)
}

test('an upgrade to a refused path followed by a connection reset does not crash the mirror process', async (t) => {
  const { origin, mirror } = await startMirror(t)

  // The refusal itself: a dot segment is a 400, and the connection is closed.
  const answer = await rawRequest(mirror.port, upgradeRequest('/%2e%2e/x'))
  assert.match(answer, /^HTTP\/1\.1 400 /)

  for (let i = 0; i < RESETS && mirror.child.exitCode === null; i++) {
    await upgradeThenReset(mirror, '/%2e%2e/x')
    await upgradeThenReset(mirror, '/a/%2e%2e/b')
  }
  for (let i = 0; i < 10 && mirror.child.exitCode === null; i++) {
    assert.match(await upgradeThenResetOnAnswer(mirror, '/%2e%2e/x'), /^HTTP\/1\.1 400 /)
  }

  await assertAliveAndServing(mirror, origin, '/after-resets.txt')
  // Nothing refused ever reached the origin.
  assert.deepEqual(
    origin.requests.filter((r) => r.headers.upgrade !== undefined).map((r) => r.url),
    [],
  )
})

test('an upgrade under /_cachemir/ is refused without reaching the origin, and a reset does not crash the mirror', async (t) => {
  const { origin, mirror } = await startMirror(t)

  const answer = await rawRequest(mirror.port, upgradeRequest('/_cachemir/health'))
  assert.match(answer, /^HTTP\/1\.1 404 /)

  for (let i = 0; i < RESETS && mirror.child.exitCode === null; i++) {
    await upgradeThenReset(mirror, '/_cachemir/health')
    await upgradeThenReset(mirror, '/_cachemir/ws?x=1')
  }
  for (let i = 0; i < 10 && mirror.child.exitCode === null; i++) {
    assert.match(await upgradeThenResetOnAnswer(mirror, '/_cachemir/ws'), /^HTTP\/1\.1 404 /)
  }

  await assertAliveAndServing(mirror, origin, '/after-resets.txt')
  assert.deepEqual(
    origin.requests.filter((r) => r.headers.upgrade !== undefined).map((r) => `${r.method} ${r.url}`),
    [],
    'the origin never saw an upgrade request',
  )
  assert.equal(origin.requests.filter((r) => r.url.startsWith('/_cachemir')).length, 0)
  // The mirror's own endpoint still answers.
  const health = await get(mirror.url('/_cachemir/health'))
  assert.equal(health.status, 200)
})
