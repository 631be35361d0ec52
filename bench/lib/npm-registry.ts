// bench/lib/npm-registry.ts
// A local npm registry origin for the `packages` scenario, run as a child process:
//   node dist/bench/lib/npm-registry.js PORT [--delay MS] [--big-bytes N]
// It serves the generated set of npm-packages.ts (the install set and the probe packages):
// documents at /NAME (scoped: /@scope%2fNAME), abbreviated when Accept names
// application/vnd.npm.install-v1+json, else full; tarballs at /NAME/-/BASE-VERSION.tgz; the large
// document at /cm-huge (--big-bytes 0: none). Tarball URLs are absolute, on this host. Documents
// are gzipped when the client accepts gzip (Vary: Accept-Encoding), as public registries do.
// Every answer waits --delay ms (default 50: an internet round trip) before its headers.
// No validators and no Cache-Control, as behind a proxy that strips them: the mirror's npm
// profile alone decides freshness (tarballs immutable, documents 5 minutes). Nothing in a round
// outlives 5 minutes, so a validator would never be used anyway.
// Control endpoints, answered at once and not counted:
//   GET /-/_bench/counts  {"requests": {"GET /path [full]": n, ...}, "log": [{url, atMs, ms, ua, cc}]}
//   GET /-/_bench/reset   clears both
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { gzipSync } from 'node:zlib'
import { bigDocument, BIG_NAME, generatePackages, packageDocuments, PROBE_PACKAGES, probePackages, tarballPath } from './npm-packages.js'

const [portArg, ...rest] = process.argv.slice(2)
const opts = new Map<string, string>()
for (let i = 0; i + 1 < rest.length; i += 2) opts.set((rest[i] as string).replace(/^--/, ''), rest[i + 1] as string)
const port = Number(portArg)
const delayMs = Number(opts.get('delay') ?? 50)
const bigBytes = Number(opts.get('big-bytes') ?? 50 * 1024 * 1024)
const base = `http://127.0.0.1:${port}/`
const ABBREVIATED = 'application/vnd.npm.install-v1+json'

interface Document {
  readonly full: Buffer
  readonly fullGzip: Buffer
  readonly abbreviated: Buffer
  readonly abbreviatedGzip: Buffer
}

const documents = new Map<string, Document>()
const tarballs = new Map<string, Buffer>()
const asDocument = (full: string, abbreviated: string): Document => ({
  full: Buffer.from(full),
  fullGzip: gzipSync(full),
  abbreviated: Buffer.from(abbreviated),
  abbreviatedGzip: gzipSync(abbreviated),
})
for (const p of [...generatePackages(), ...probePackages(PROBE_PACKAGES)]) {
  const { full, abbreviated } = packageDocuments(p, base)
  documents.set(p.name, asDocument(full, abbreviated))
  for (const v of p.versions) tarballs.set(tarballPath(p.name, v.version), v.tarball)
}
if (bigBytes > 0) {
  const big = bigDocument(base, bigBytes)
  // Its abbreviated form is the full one here: only the full document is measured.
  documents.set(BIG_NAME, asDocument(big.full, big.full))
}

const LOG_MAX = 20_000
let counts = new Map<string, number>()
let log: { url: string; atMs: number; ms: number; ua: string; cc: string }[] = []
let resetAt = performance.now()

function answer(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/'
  if (url === '/-/_bench/counts') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ requests: Object.fromEntries(counts), log }))
    return
  }
  if (url === '/-/_bench/reset') {
    counts = new Map()
    log = []
    resetAt = performance.now()
    res.end('ok')
    return
  }
  const path = url.slice(1).split('?', 1)[0] as string
  const accept = req.headers.accept ?? ''
  const doc = documents.get(decodeURIComponent(path))
  const wantsAbbreviated = accept.toLowerCase().includes(ABBREVIATED)
  // One key per URL and representation: a full and an abbreviated fetch of one URL are two objects.
  const key = `${req.method ?? 'GET'} ${url}${doc !== undefined && !wantsAbbreviated ? ' [full]' : ''}`
  counts.set(key, (counts.get(key) ?? 0) + 1)
  const arrived = performance.now()
  setTimeout(() => {
    const headers: Record<string, string | number> = {}
    let body: Buffer | undefined
    if (doc !== undefined) {
      const gzip = /\bgzip\b/i.test(req.headers['accept-encoding'] ?? '')
      body = wantsAbbreviated ? (gzip ? doc.abbreviatedGzip : doc.abbreviated) : gzip ? doc.fullGzip : doc.full
      headers['content-type'] = wantsAbbreviated ? ABBREVIATED : 'application/json'
      headers.vary = 'Accept-Encoding'
      if (gzip) headers['content-encoding'] = 'gzip'
    } else {
      body = tarballs.get(path)
      headers['content-type'] = 'application/octet-stream'
    }
    if (body === undefined) {
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': 21 }).end('{"error":"not found"}')
    } else {
      headers['content-length'] = body.length
      res.writeHead(200, headers)
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    res.once('finish', () => {
      if (log.length < LOG_MAX) {
        const ua = (req.headers['user-agent'] ?? '').split(' ', 1)[0] ?? ''
        const cc = [req.headers['cache-control'], req.headers.pragma, req.headers['if-none-match']]
          .filter((v) => v !== undefined)
          .join('; ')
        log.push({ url: key, atMs: Math.round(arrived - resetAt), ms: Math.round(performance.now() - arrived), ua, cc })
      }
    })
  }, delayMs)
}

const server = createServer({ keepAliveTimeout: 60_000 }, answer)
server.listen(port, '127.0.0.1')
process.on('SIGTERM', () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
})
