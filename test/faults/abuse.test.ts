// test/faults/abuse.test.ts
// Hostile requests against a real mirror and a real origin that records what reaches it: path
// traversal in every encoding, proxy-style targets, a lying Host header, oversized request heads,
// an unkeyed header reflected by the origin, and credentials that must stay with their route.
//
// Already covered elsewhere, not repeated here:
// - the basic traversal targets get 400 (test/integration/routing.test.ts, "path traversal and
//   encoded separators get 400 and never reach the origin");
// - `GET http://127.0.0.1:ORIGINPORT/x` gets 400 and reaches no origin (routing.test.ts, "an
//   absolute-form request target gets 400 and is not forwarded anywhere");
// - `//host/x` and `http://…` inside a path stay under the upstream path (routing.test.ts);
// - a request with Authorization is neither answered from nor stored in the cache (routing.test.ts).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { listRelative } from '../helpers/cache-files.js'
import { get } from '../helpers/client.js'
import { sendBody, startEchoOrigin, startOrigin } from '../helpers/origin.js'
import { startBoundedMirror, startProxy, startRoutedProxy, type Proxy } from '../helpers/proxy.js'
import { KiB } from '../helpers/sizes.js'
import { rawExchange, startTcpSink, statusOf } from '../helpers/tcp.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { gate, until, WAIT_MS, within } from '../helpers/wait.js'

function head(port: number, requestLine: string, extra = ''): string {
  return `${requestLine}\r\nHost: 127.0.0.1:${port}\r\n${extra}Connection: close\r\n\r\n`
}

/** A normal request still gets a normal answer: the server survived whatever came before. */
async function assertStillServes(proxy: Proxy, path: string, expected: string): Promise<void> {
  const res = await within(get(proxy.url(path)), WAIT_MS, `a normal GET ${path} afterwards`)
  assert.equal(res.status, 200, `GET ${path} afterwards`)
  assert.equal(res.body.toString(), expected)
}

/** Why an origin request target is outside `/base/`, or undefined when it is inside. */
function escapesBase(target: string): string | undefined {
  if (!target.startsWith('/base/')) return 'raw target'
  // What an origin that resolves dot segments (WHATWG URL rules, which decode %2e) would serve.
  if (!new URL(target, 'http://origin.invalid/').pathname.startsWith('/base/')) return 'resolved path'
  // What an origin that percent-decodes the path once would see.
  const path = target.split('?')[0] as string
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    return undefined // not decodable: no origin can map it onto a file
  }
  if (decoded.includes('\\') || decoded.includes('\0')) return 'decoded backslash or NUL'
  if (decoded.split('/').some((s) => s === '..' || s === '.')) return 'decoded dot segment'
  return undefined
}

// Dot segments, separators and NUL in encodings beyond the ones routing.test.ts lists.
const TRAVERSALS: readonly string[] = [
  '/pkg/../secret',
  '/pkg/../../../../etc/passwd',
  '/pkg/a/../../secret',
  '/pkg/%2e%2e/%2e%2e/etc/passwd',
  '/pkg/%2E%2e/secret',
  '/pkg/%2e%2E/secret',
  '/pkg/%2e./secret',
  '/pkg/%2e/secret',
  '/pkg/..%2fsecret',
  '/pkg/..%2F..%2Fetc%2Fpasswd',
  '/pkg/a%2f..%2f..%2fsecret',
  '/pkg%2f..%2fsecret',
  '/pkg/..%5csecret',
  '/pkg/..%5C..%5Csecret',
  '/pkg/..\\..\\secret',
  '/pkg/a%00.txt',
  '/pkg/%00/../secret',
  '/pkg/%c0%ae%c0%ae/secret',
  '/pkg/%c0%ae%c0%ae%c0%afsecret',
  '/pkg/%e0%80%ae%e0%80%ae/secret',
  '/pkg/%2e%2e?x=1',
  '/..',
  '/../pkg/x',
  '/pkg/..',
]

// Not traversal to the mirror (one decode does not give a dot segment): may be forwarded, but
// only verbatim under /base/ (an origin that decodes twice is the origin's own bug).
const LOOKALIKES: readonly string[] = [
  '/pkg/%252e%252e/secret',
  '/pkg/%252e%252e%252fsecret',
  '/pkg/..;/secret',
  '/pkg/%ef%bc%8e%ef%bc%8e/secret',
  '/pkg/ok?path=../../etc/passwd',
  '/pkg/...',
]

test('traversal in any encoding never reaches above the upstream base path nor writes outside the cache dir', async (t) => {
  const origin = await startEchoOrigin(t, 'O')
  const parent = await makeTempDir(t, 'cachemir-abuse-')
  const cacheDir = join(parent, 'cache')
  await mkdir(cacheDir)
  await writeFile(join(parent, 'secret'), 'outside the cache')
  const proxy = await startRoutedProxy(t, [{ prefix: '/pkg/', upstreams: [`${origin.url}/base/`] }], { cacheDir })
  await assertStillServes(proxy, '/pkg/first.txt', 'O /base/first.txt')
  const outsideBefore = (await listRelative(parent)).filter((p) => !p.startsWith('cache/'))

  const refused: string[] = []
  for (const target of TRAVERSALS) {
    const r = await within(rawExchange(proxy.port, [head(proxy.port, `GET ${target} HTTP/1.1`)]), WAIT_MS, target)
    if (r.status !== 400) refused.push(`${target} -> ${r.status} ${JSON.stringify(r.text.slice(0, 80))}`)
  }
  // A raw NUL byte in the request line (not percent-encoded).
  const nul = await rawExchange(proxy.port, [Buffer.from(head(proxy.port, 'GET /pkg/a\0/../secret HTTP/1.1'), 'latin1')])
  if (nul.status !== 400) refused.push(`raw NUL -> ${nul.status}`)
  const lookalikes: string[] = []
  for (const target of LOOKALIKES) {
    const r = await within(rawExchange(proxy.port, [head(proxy.port, `GET ${target} HTTP/1.1`)]), WAIT_MS, target)
    if (r.status !== 400 && r.status !== 200) lookalikes.push(`${target} -> ${r.status}`)
  }
  const outsideAfter = (await listRelative(parent)).filter((p) => !p.startsWith('cache/'))
  const inside = await listRelative(cacheDir)

  assert.deepEqual(refused, [], 'every traversal gets 400')
  assert.deepEqual(lookalikes, [], 'look-alikes get 400 or are forwarded')
  const escaped = origin.requests.map((r) => r.url).filter((u) => escapesBase(u) !== undefined)
  assert.deepEqual(escaped, [], `origin targets outside /base/: ${escaped.map((u) => `${u} (${escapesBase(u) ?? ''})`).join(', ')}`)
  for (const r of origin.requests)
    assert.ok(
      LOOKALIKES.some((l) => `/base/${l.slice('/pkg/'.length)}` === r.url) || r.url === '/base/first.txt',
      `unexpected origin target ${r.url}`,
    )
  assert.deepEqual(outsideAfter, outsideBefore, 'no file appeared or vanished outside the cache dir')
  const stray = inside.filter((p) => !/^cachemir-v1\/objects\/[0-9a-f]{2}\/[^/]+$/.test(p))
  assert.deepEqual(stray, [], 'every cache file lives in a hash bucket')
  await assertStillServes(proxy, '/pkg/first.txt', 'O /base/first.txt')
})

test('absolute-form and authority-form targets naming another host get a 4xx and reach neither that host nor the origin', async (t) => {
  // `GET http://127.0.0.1:ORIGINPORT/x` itself is covered by routing.test.ts.
  const origin = await startEchoOrigin(t, 'O')
  const other = await startTcpSink(t)
  const proxy = await startProxy(t, { upstream: `${origin.url}/base/` })

  const lines = [
    `GET http://127.0.0.1:${other.port}/x HTTP/1.1`,
    `GET HTTP://127.0.0.1:${other.port}/x HTTP/1.1`,
    `GET https://127.0.0.1:${other.port}/x HTTP/1.1`,
    `GET http://127.0.0.1:${proxy.port}/x HTTP/1.1`,
    `GET 127.0.0.1:${other.port} HTTP/1.1`,
    `HEAD http://127.0.0.1:${other.port}/x HTTP/1.1`,
    `POST http://127.0.0.1:${other.port}/x HTTP/1.1`,
    `OPTIONS http://127.0.0.1:${other.port}/x HTTP/1.1`,
  ]
  const answers: string[] = []
  for (const line of lines) {
    const extra = line.startsWith('POST') ? 'Content-Length: 0\r\n' : ''
    const r = await within(rawExchange(proxy.port, [head(proxy.port, line, extra)]), WAIT_MS, line)
    if (!(r.status >= 400 && r.status < 500)) answers.push(`${line} -> ${r.status} ${JSON.stringify(r.text.slice(0, 80))}`)
  }

  assert.deepEqual(answers, [], 'each proxy-style request gets a 4xx response')
  assert.equal(other.connections(), 0, `the named host was contacted: ${JSON.stringify(other.received().slice(0, 200))}`)
  assert.equal(origin.count(), 0)
  await assertStillServes(proxy, '/after', 'O /base/after')
})

test('a Host header naming another host does not change the upstream, which sees its own Host', async (t) => {
  const origin = await startEchoOrigin(t, 'O')
  const other = await startEchoOrigin(t, 'OTHER')
  const proxy = await startProxy(t, { upstream: `${origin.url}/base/` })

  const hosts = ['evil.example', `127.0.0.1:${other.port}`, `localhost:${other.port}`, 'localhost']
  const bodies: string[] = []
  for (const [i, host] of hosts.entries()) {
    const r = await within(rawExchange(proxy.port, [`GET /h${i} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`]), WAIT_MS, host)
    assert.equal(r.status, 200, `Host: ${host}`)
    bodies.push(r.text.slice(r.text.indexOf('\r\n\r\n') + 4))
  }
  // The cache key ignores Host too: another Host gets the same stored copy.
  const again = await rawExchange(proxy.port, [`GET /h0 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n`])

  assert.deepEqual(
    bodies,
    hosts.map((_, i) => `O /base/h${i}`),
  )
  assert.equal(other.count(), 0, 'the host named by the client was never contacted')
  assert.deepEqual(
    origin.requests.map((r) => r.headers.host),
    hosts.map(() => `127.0.0.1:${origin.port}`),
  )
  assert.equal(again.status, 200)
  assert.match(again.text, /\r\ncache-status: cachemir; hit/i)
  assert.equal(origin.count(), hosts.length)
})

test('an oversized request line or header block gets 400/414/431, the connection is closed, and the server keeps serving', async (t) => {
  const origin = await startEchoOrigin(t, 'O')
  const proxy = await startProxy(t, { upstream: `${origin.url}/base/` })
  await assertStillServes(proxy, '/before', 'O /base/before')
  origin.reset()

  const manyHeaders = Array.from({ length: 3000 }, (_, i) => `X-H${i}: v\r\n`).join('')
  const cases: readonly { name: string; text: string }[] = [
    { name: 'a 100 KiB URL', text: head(proxy.port, `GET /${'a'.repeat(100 * KiB)} HTTP/1.1`) },
    { name: 'a 100 KiB header', text: head(proxy.port, 'GET /x HTTP/1.1', `X-Big: ${'b'.repeat(100 * KiB)}\r\n`) },
    { name: '3000 small headers', text: head(proxy.port, 'GET /y HTTP/1.1', manyHeaders) },
    { name: 'a 1 MiB header line with no end', text: `GET /z HTTP/1.1\r\nX-Endless: ${'c'.repeat(1024 * KiB)}` },
  ]
  const results: string[] = []
  for (const c of cases) {
    const r = await within(rawExchange(proxy.port, [c.text]), WAIT_MS, c.name)
    if (![400, 414, 431].includes(r.status) || !r.closedByServer) {
      results.push(
        `${c.name}: status ${r.status}, closed by server ${String(r.closedByServer)}, got ${JSON.stringify(r.text.slice(0, 80))}`,
      )
    }
  }

  assert.deepEqual(results, [], 'each oversized head is refused and its connection closed')
  assert.equal(origin.count(), 0, 'nothing oversized was forwarded')
  await assertStillServes(proxy, '/after', 'O /base/after')
})

test('X-Forwarded-Host is forwarded on a fill but is not part of the key: a reflecting origin without Vary decides the copy every later client gets', async (t) => {
  // Documents behaviour: cachemir forwards end-to-end headers other than credentials and cache
  // directives on a shared fill (src/proxy/forward-headers.ts) and keys on path and query only,
  // like any shared cache. An origin that reflects a request header must name it in Vary; the
  // second half shows that then each value gets its own copy.
  const origin = await startOrigin(t, (req, res) => {
    const reflected = String(req.headers['x-forwarded-host'] ?? 'none')
    const vary = req.url?.startsWith('/varied') === true ? { vary: 'X-Forwarded-Host' } : {}
    return sendBody(req, res, Buffer.from(`<a href="https://${reflected}/next">`), { headers: { 'cache-control': 'max-age=60', ...vary } })
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const poisoner = await get(proxy.url('/page'), { headers: { 'x-forwarded-host': 'evil.example' } })
  const victim = await get(proxy.url('/page'))
  const variedEvil = await get(proxy.url('/varied'), { headers: { 'x-forwarded-host': 'evil.example' } })
  const variedPlain = await get(proxy.url('/varied'))

  assert.equal(origin.requests[0]?.headers['x-forwarded-host'], 'evil.example', 'forwarded on the fill')
  assert.equal(poisoner.body.toString(), '<a href="https://evil.example/next">')
  assert.match(victim.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(victim.body.toString(), poisoner.body.toString(), 'the next client gets exactly what the first one stored')
  assert.equal(origin.count('/page'), 1)
  assert.equal(variedEvil.body.toString(), '<a href="https://evil.example/next">')
  assert.equal(variedPlain.body.toString(), '<a href="https://none/next">', 'with Vary the header value selects the copy')
  assert.equal(origin.count('/varied'), 2)
})

test('a Cookie is never sent upstream on a shared fill, and the stored copy serves clients with other cookies', async (t) => {
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from(`cookie=${String(req.headers.cookie ?? '')}`), { headers: { 'cache-control': 'max-age=60' } }),
  )
  const proxy = await startProxy(t, { upstream: origin.url })

  const alice = await get(proxy.url('/shared'), {
    headers: { cookie: 'session=alice-secret', 'proxy-authorization': 'Basic cHJveHk6cHc=' },
  })
  const bob = await get(proxy.url('/shared'), { headers: { cookie: 'session=bob-secret' } })

  assert.equal(origin.count('/shared'), 1)
  assert.equal(origin.requests[0]?.headers.cookie, undefined, 'no Cookie on the shared fill')
  assert.equal(origin.requests[0]?.headers['proxy-authorization'], undefined, 'no Proxy-Authorization upstream')
  assert.equal(alice.body.toString(), 'cookie=')
  assert.match(alice.headers['cache-status'] ?? '', /stored/)
  assert.equal(bob.body.toString(), 'cookie=')
  assert.match(bob.headers['cache-status'] ?? '', /^cachemir; hit/)
})

test("Authorization goes only to its route's own upstream: never to another route's, not along a redirect, not on a fill it found running", async (t) => {
  const release = gate(t)
  const b = await startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from(`B saw ${String(req.headers.authorization ?? 'nothing')}`), {
      headers: { 'cache-control': 'max-age=60' },
    }),
  )
  const a = await startOrigin(t, async (req, res) => {
    if (req.url === '/a-root/to-b') {
      // A redirect to the other route's upstream: the client may follow it, the mirror must not.
      res.writeHead(302, { location: `${b.url}/b-root/landing`, 'content-length': '0' })
      res.end()
      return
    }
    if (req.url === '/a-root/slow' && req.headers.authorization === undefined) await release.promise
    await sendBody(req, res, Buffer.from(`A saw ${String(req.headers.authorization ?? 'nothing')}`), {
      headers: { 'cache-control': 'public, max-age=60' },
    })
  })
  const proxy = await startRoutedProxy(t, [
    { prefix: '/a/', upstreams: [`${a.url}/a-root/`] },
    { prefix: '/b/', upstreams: [`${b.url}/b-root/`] },
  ])
  const auth = { authorization: 'Bearer alice-token' }

  const own = await get(proxy.url('/a/doc'), { headers: auth })
  const redirected = await get(proxy.url('/a/to-b'), { headers: auth })
  // An anonymous fill is running when the authorized request for the same URL arrives.
  const anonymous = get(proxy.url('/a/slow'))
  await until(() => a.count('/a-root/slow') === 1, 'the anonymous fill reached the origin')
  const authed = await within(
    get(proxy.url('/a/slow'), { headers: auth }),
    WAIT_MS,
    'the authorized request is not held by the anonymous fill',
  )
  release.open()
  const anon = await within(anonymous, WAIT_MS, 'the anonymous fill')

  assert.equal(own.body.toString(), 'A saw Bearer alice-token')
  assert.equal(redirected.status, 302)
  assert.equal(redirected.headers.location, `${b.url}/b-root/landing`)
  assert.equal(authed.body.toString(), 'A saw Bearer alice-token')
  assert.equal(anon.body.toString(), 'A saw nothing', 'the shared fill carried no credentials')
  assert.deepEqual(
    a.requests.filter((r) => r.url === '/a-root/slow').map((r) => r.headers.authorization),
    [undefined, 'Bearer alice-token'],
    'one anonymous fill and one separate authorized request',
  )
  assert.equal(b.count(), 0, "the other route's upstream never saw a request, with or without credentials")
})

test('CONNECT gets a 4xx response, opens no tunnel to the host it names or to the origin, and does not keep the mirror from closing', async (t) => {
  const origin = await startEchoOrigin(t, 'O')
  const other = await startTcpSink(t)
  // Not startProxy: a CONNECT socket the mirror forgets would hang its close() in the t.after hook.
  const mirror = await startBoundedMirror(t, { upstream: [`${origin.url}/base/`] })

  const targets = [`127.0.0.1:${other.port}`, `127.0.0.1:${origin.port}`, 'localhost:443']
  const answers: string[] = []
  for (const target of targets) {
    // Bytes a tunnel would carry follow the request at once, as a TLS ClientHello would.
    const r = await within(
      rawExchange(mirror.port, [`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`, 'GET /tunnelled HTTP/1.1\r\n\r\n']),
      WAIT_MS,
      target,
    )
    if (!(r.status >= 400 && r.status < 500))
      answers.push(`CONNECT ${target} -> ${r.status === 0 ? 'no response' : r.status} ${JSON.stringify(r.text.slice(0, 80))}`)
  }
  // A client that reads the answer but never closes its side of the connection.
  const lingering = connect({ port: mirror.port, host: '127.0.0.1', allowHalfOpen: true })
  t.after(() => {
    lingering.destroy()
  })
  lingering.on('error', () => {})
  let lingeringGot = ''
  lingering.on('data', (c: Buffer) => (lingeringGot += c.toString('latin1')))
  lingering.write(`CONNECT 127.0.0.1:${other.port} HTTP/1.1\r\nHost: 127.0.0.1:${other.port}\r\n\r\n`)
  await until(() => lingeringGot.includes('\r\n\r\n'), 'the answer to the lingering CONNECT', WAIT_MS)
  if (!(statusOf(lingeringGot) >= 400 && statusOf(lingeringGot) < 500)) answers.push(`lingering CONNECT -> ${statusOf(lingeringGot)}`)
  const after = await within(get(`http://127.0.0.1:${mirror.port}/after`), WAIT_MS, 'a normal GET afterwards')

  assert.equal(other.connections(), 0, `the named host was contacted: ${JSON.stringify(other.received().slice(0, 200))}`)
  assert.equal(origin.count('/base/after'), 1)
  assert.equal(origin.count(), 1, 'nothing but the normal GET reached the origin')
  assert.equal(after.body.toString(), 'O /base/after')
  assert.deepEqual(answers, [], 'each CONNECT gets a 4xx response (not a silently dropped connection)')
  // A graceful close ends every connection within its grace period, whatever the clients do.
  await within(mirror.close(1000), 5000, 'the mirror to close after CONNECT requests')
})

test('refused WebSocket upgrades from clients that never close their side do not keep the mirror from closing', async (t) => {
  // test/cli/robustness.test.ts covers a reset after a refused upgrade (no crash); this is the
  // client that reads the refusal and then just stays connected.
  const origin = await startEchoOrigin(t, 'O')
  const mirror = await startBoundedMirror(t, { upstream: [`${origin.url}/base/`] })

  const refusals = ['/_cachemir/socket', '/a/../b', '/a/%2e%2e/b']
  const answers: number[] = []
  for (const path of refusals) {
    const s = connect({ port: mirror.port, host: '127.0.0.1', allowHalfOpen: true })
    t.after(() => {
      s.destroy()
    })
    s.on('error', () => {})
    let got = ''
    s.on('data', (c: Buffer) => (got += c.toString('latin1')))
    s.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${mirror.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    )
    await until(() => got.includes('\r\n\r\n'), `the answer to the upgrade of ${path}`, WAIT_MS)
    answers.push(statusOf(got))
  }
  const after = await within(get(`http://127.0.0.1:${mirror.port}/after`), WAIT_MS, 'a normal GET afterwards')

  assert.deepEqual(answers, [404, 400, 400])
  assert.equal(after.body.toString(), 'O /base/after')
  assert.equal(origin.count(), 1, 'no refused upgrade reached the origin')
  // A graceful close ends every connection within its grace period, whatever the clients do.
  await within(mirror.close(1000), 5000, 'the mirror to close with refused upgrade connections still open')
})
