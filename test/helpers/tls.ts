// test/helpers/tls.ts
// Throwaway TLS for tests: a CA and a certificate for 127.0.0.1 made with openssl, and an https
// origin using them.

import type { TestContext } from 'node:test'
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import type { OutgoingHttpHeaders } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { sendBody, type OriginRequest } from './origin.js'
import { listenOnLoopback } from './tcp.js'
import { makeTempDir } from './temp-dir.js'

const run = promisify(execFile)
const CACHEABLE = { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream' }

export interface Pki {
  readonly caPath: string
  readonly key: string
  readonly cert: string
}

/** A throwaway CA and a certificate for IP 127.0.0.1 signed by it (P-256 keys, valid two days). */
export async function makePki(t: TestContext): Promise<Pki> {
  const dir = await makeTempDir(t, 'cachemir-pki-')
  const at = (name: string): string => join(dir, name)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=cachemir test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ])
  await run('openssl', ['req', '-new', ...ec, '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=127.0.0.1'])
  await writeFile(
    at('server.ext'),
    'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  )
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-set_serial',
    '1',
    '-days',
    '2',
    '-out',
    at('server.pem'),
    '-extfile',
    at('server.ext'),
  ])
  return { caPath: at('ca.pem'), key: await readFile(at('server.key'), 'utf8'), cert: await readFile(at('server.pem'), 'utf8') }
}

/** An https origin on 127.0.0.1:0 serving `body` at /base/x; records requests that got past TLS. */
export async function startHttpsOrigin(
  t: TestContext,
  pki: Pki,
  body: Buffer,
  headers: OutgoingHttpHeaders = CACHEABLE,
): Promise<{ url: string; requests: OriginRequest[] }> {
  const requests: OriginRequest[] = []
  const server = createHttpsServer({ key: pki.key, cert: pki.cert }, (req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, at: Date.now() })
    if (req.url === '/base/x') void sendBody(req, res, body, { headers })
    else void sendBody(req, res, Buffer.from('not found'), { status: 404 })
  })
  server.on('tlsClientError', () => {})
  return { url: `https://127.0.0.1:${await listenOnLoopback(t, server)}`, requests }
}
