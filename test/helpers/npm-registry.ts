// test/helpers/npm-registry.ts
// A local npm registry origin on 127.0.0.1:0: real package tarballs (npm pack's layout, a gzipped
// ustar archive of package/…) and the package documents npm reads, full or abbreviated as the
// Accept header asks, identity or gzip as Accept-Encoding allows; every request is recorded.

import { createHash } from 'node:crypto'
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import type { TestContext } from 'node:test'
import { gzipSync } from 'node:zlib'
import { isNotModified, sendBody, startOrigin, type Origin, type SendOptions } from './origin.js'

/** The media type of npm's abbreviated ("corgi") documents. */
export const ABBREVIATED = 'application/vnd.npm.install-v1+json'
/** What the npm CLI sends when it installs (npm-registry-fetch's corgi Accept). */
export const NPM_INSTALL_ACCEPT = `${ABBREVIATED}; q=1.0, application/json; q=0.8, */*`

export interface PackageVersion {
  readonly version: string
  /** name -> range, written to package.json and to the documents. */
  readonly dependencies?: Readonly<Record<string, string>>
  /** Files besides package/package.json, by path below package/; default an index.js naming the version. */
  readonly files?: Readonly<Record<string, string>>
  /** Padding for the version's entry in the full document (a large document without large tarballs). */
  readonly readmeBytes?: number
}

export interface PackageSpec {
  /** `name` or `@scope/name`. */
  readonly name: string
  /** In publishing order; the last is `latest`. */
  readonly versions: readonly PackageVersion[]
}

export interface RegistryOptions {
  /**
   * 'etag': documents and tarballs carry an ETag (answered with 304) and `Cache-Control: public,
   * max-age=300`; 'none': no validator and no Cache-Control, as behind proxies that strip them.
   * Default 'etag'.
   */
  readonly validators?: 'etag' | 'none'
  /** Documents are sent gzip-coded to clients that accept gzip. Default true. */
  readonly gzip?: boolean
  /** A Vary header on documents (default none: the upstream does not declare its negotiation). */
  readonly vary?: string
  /** How documents are written (chunk size, rate), to cut URLs across the chunks the mirror reads. */
  readonly send?: Pick<SendOptions, 'chunkBytes' | 'bytesPerSecond'>
}

/** One built tarball. */
export interface Tarball {
  readonly name: string
  readonly version: string
  /** The path on the registry: `/name/-/name-1.0.0.tgz`, `/@scope/name/-/name-1.0.0.tgz`. */
  readonly path: string
  readonly bytes: Buffer
  /** `sha512-<base64>` */
  readonly integrity: string
  /** sha1, hex */
  readonly shasum: string
  /** The files under package/, package.json included. */
  readonly files: Readonly<Record<string, string>>
}

export interface NpmRegistry extends Origin {
  /** Every tarball, by `name@version`. */
  readonly tarballs: ReadonlyMap<string, Tarball>
  /** The full document as the registry sends it (identity), by package name. */
  fullDocument(name: string): Buffer
  /** The abbreviated document (identity), by package name. */
  abbreviatedDocument(name: string): Buffer
  /** The document path npm requests: `/name`, `/@scope%2fname`. */
  documentPath(name: string): string
  /** Requests whose path is one of the tarballs'. */
  tarballRequests(): number
}

/**
 * Starts the registry. Documents answer at `/name`, and for scoped names at `/@scope%2fname`
 * (either case of the escape) and `/@scope/name`; tarball URLs in them are absolute, on this
 * origin's own host; `/name/1.0.0` and `/name/latest` answer one version's entry.
 * `/-/v1/search?text=…` answers live results (cacheable for 5 minutes, as it
 * says). Everything else is a 404 JSON error, as a registry sends.
 */
export async function startNpmRegistry(
  t: TestContext,
  packages: readonly PackageSpec[],
  options: RegistryOptions = {},
): Promise<NpmRegistry> {
  const validators = options.validators ?? 'etag'
  const gzip = options.gzip ?? true
  const tarballs = new Map<string, Tarball>()
  const byPath = new Map<string, Tarball>()
  for (const spec of packages) {
    for (const v of spec.versions) {
      const tarball = buildTarball(spec.name, v)
      tarballs.set(`${spec.name}@${v.version}`, tarball)
      byPath.set(tarball.path, tarball)
    }
  }
  const documents = new Map<string, { full: Document; abbreviated: Document }>()
  // The origin's own URL, known once it listens; documents are built on first use.
  let base = ''
  const docsOf = (name: string): { full: Document; abbreviated: Document } => {
    const spec = packages.find((p) => p.name === name)
    if (spec === undefined) throw new Error(`no package ${name}`)
    let docs = documents.get(name)
    if (docs === undefined) {
      docs = {
        full: makeDocument(fullDocument(spec, base, tarballs)),
        abbreviated: makeDocument(abbreviatedDocument(spec, base, tarballs)),
      }
      documents.set(name, docs)
    }
    return docs
  }

  const origin = await startOrigin(t, async (req, res) => {
    const path = req.url ?? ''
    const tarball = byPath.get(path)
    if (tarball !== undefined) {
      const headers: OutgoingHttpHeaders = { 'content-type': 'application/octet-stream' }
      if (validators === 'etag') Object.assign(headers, { etag: `"${tarball.shasum}"`, 'cache-control': 'public, max-age=31536000' })
      return sendResource(req, res, tarball.bytes, undefined, headers, validators === 'etag' ? `"${tarball.shasum}"` : undefined)
    }
    // Search results are live data, though the registry says they may be cached for 5 minutes.
    if (path.startsWith('/-/v1/search?')) {
      const text = new URL(path, base).searchParams.get('text') ?? ''
      const objects = packages.filter((p) => p.name.includes(text)).map((p) => ({ package: { name: p.name }, searchedAt: Date.now() }))
      const body = Buffer.from(JSON.stringify({ objects, total: objects.length, time: new Date().toISOString() }))
      return sendBody(req, res, body, { headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' } })
    }
    // One version's document (`/name/1.0.0`, `/name/latest`), as `npm view name@1.0.0` may fetch it.
    const versionDoc = /^(\/.+)\/([^/@%]+)$/.exec(path)
    const versionOf = versionDoc === null ? undefined : nameOfDocumentPath(versionDoc[1] ?? '')
    if (versionDoc !== null && versionOf !== undefined && packages.some((p) => p.name === versionOf)) {
      const full = JSON.parse(docsOf(versionOf).full.identity.toString()) as {
        'dist-tags': Record<string, string>
        versions: Record<string, unknown>
      }
      const wanted = versionDoc[2] ?? ''
      const entry = full.versions[full['dist-tags'][wanted] ?? wanted]
      if (entry !== undefined)
        return sendBody(req, res, Buffer.from(JSON.stringify(entry)), { headers: { 'content-type': 'application/json' } })
    }
    const name = nameOfDocumentPath(path)
    if (name === undefined || !packages.some((p) => p.name === name)) {
      return sendBody(req, res, Buffer.from('{"error":"Not found"}'), { status: 404, headers: { 'content-type': 'application/json' } })
    }
    const docs = docsOf(name)
    const abbreviated = (req.headers.accept ?? '').toLowerCase().includes(ABBREVIATED)
    const doc = abbreviated ? docs.abbreviated : docs.full
    const headers: OutgoingHttpHeaders = { 'content-type': abbreviated ? ABBREVIATED : 'application/json' }
    if (options.vary !== undefined) headers['vary'] = options.vary
    if (validators === 'etag') Object.assign(headers, { etag: doc.etag, 'cache-control': 'public, max-age=300' })
    const coded = gzip && acceptsGzip(req) ? doc.gzipped() : undefined
    return sendResource(req, res, doc.identity, coded, headers, validators === 'etag' ? doc.etag : undefined, options.send)
  })
  base = origin.url
  return {
    ...origin,
    tarballs,
    fullDocument: (name) => docsOf(name).full.identity,
    abbreviatedDocument: (name) => docsOf(name).abbreviated.identity,
    documentPath: (name) => `/${name.replace('/', '%2f')}`,
    tarballRequests: () => origin.requests.filter((r) => byPath.has(r.url)).length,
  }
}

/** A package with one version. */
export function packageOf(name: string, version: string, dependencies?: Record<string, string>): PackageSpec {
  return { name, versions: [dependencies === undefined ? { version } : { version, dependencies }] }
}

interface Document {
  readonly identity: Buffer
  readonly etag: string
  gzipped(): Buffer
}

function makeDocument(value: unknown): Document {
  const identity = Buffer.from(JSON.stringify(value))
  let gzipped: Buffer | undefined
  return {
    identity,
    etag: `"${createHash('sha1').update(identity).digest('hex').slice(0, 16)}"`,
    gzipped: () => (gzipped ??= gzipSync(identity)),
  }
}

/** 304 on a matching If-None-Match, else the body (gzip-coded when `coded` is given). */
async function sendResource(
  req: IncomingMessage,
  res: Parameters<typeof sendBody>[1],
  identity: Buffer,
  coded: Buffer | undefined,
  headers: OutgoingHttpHeaders,
  etag: string | undefined,
  send: Pick<SendOptions, 'chunkBytes' | 'bytesPerSecond'> = {},
): Promise<void> {
  if (etag !== undefined && isNotModified(req, { etag })) {
    res.writeHead(304, headers)
    res.end()
    return
  }
  if (coded === undefined) return sendBody(req, res, identity, { ...send, headers })
  return sendBody(req, res, coded, { ...send, headers: { ...headers, 'content-encoding': 'gzip' } })
}

function acceptsGzip(req: IncomingMessage): boolean {
  const value = req.headers['accept-encoding'] ?? ''
  return value.split(',').some((member) => {
    const [token = '', ...params] = member.split(';').map((s) => s.trim().toLowerCase())
    return (token === 'gzip' || token === '*') && !params.includes('q=0')
  })
}

/** `/name`, `/@scope%2fname`, `/@scope%2Fname`, `/@scope/name` -> the package name; undefined otherwise. */
function nameOfDocumentPath(path: string): string | undefined {
  const m = /^\/(@[^/%]+(?:%2[fF]|\/))?([^/@%?][^/?]*)$/.exec(path)
  if (m === null) return undefined
  const scope = m[1] === undefined ? '' : `${m[1].replace(/(%2[fF]|\/)$/, '')}/`
  return scope + (m[2] ?? '')
}

function tarballPath(name: string, version: string): string {
  const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name
  return `/${name}/-/${base}-${version}.tgz`
}

function dist(base: string, tarball: Tarball): Record<string, unknown> {
  return { tarball: base + tarball.path, integrity: tarball.integrity, shasum: tarball.shasum }
}

function tarballOf(tarballs: ReadonlyMap<string, Tarball>, name: string, version: string): Tarball {
  const tarball = tarballs.get(`${name}@${version}`)
  if (tarball === undefined) throw new Error(`no tarball ${name}@${version}`)
  return tarball
}

function fullDocument(spec: PackageSpec, base: string, tarballs: ReadonlyMap<string, Tarball>): unknown {
  const versions: Record<string, unknown> = {}
  const time: Record<string, string> = { created: '2024-01-01T00:00:00.000Z', modified: '2024-06-01T00:00:00.000Z' }
  spec.versions.forEach((v, i) => {
    versions[v.version] = {
      name: spec.name,
      version: v.version,
      description: `${spec.name} at ${v.version}`,
      main: 'index.js',
      license: 'MIT',
      dependencies: v.dependencies ?? {},
      readme: 'r'.repeat(v.readmeBytes ?? 0),
      _id: `${spec.name}@${v.version}`,
      dist: dist(base, tarballOf(tarballs, spec.name, v.version)),
    }
    time[v.version] = new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString()
  })
  const latest = spec.versions[spec.versions.length - 1]?.version ?? '0.0.0'
  return {
    _id: spec.name,
    name: spec.name,
    description: `the ${spec.name} package`,
    'dist-tags': { latest },
    versions,
    time,
    readme: `# ${spec.name}\n`,
    homepage: `${base}/-/web/detail/${spec.name}`,
  }
}

function abbreviatedDocument(spec: PackageSpec, base: string, tarballs: ReadonlyMap<string, Tarball>): unknown {
  const versions: Record<string, unknown> = {}
  for (const v of spec.versions) {
    versions[v.version] = {
      name: spec.name,
      version: v.version,
      dependencies: v.dependencies ?? {},
      dist: dist(base, tarballOf(tarballs, spec.name, v.version)),
    }
  }
  const latest = spec.versions[spec.versions.length - 1]?.version ?? '0.0.0'
  return { name: spec.name, modified: '2024-06-01T00:00:00.000Z', 'dist-tags': { latest }, versions }
}

function buildTarball(name: string, v: PackageVersion): Tarball {
  const packageJson = JSON.stringify(
    {
      name,
      version: v.version,
      description: `${name} at ${v.version}`,
      main: 'index.js',
      license: 'MIT',
      dependencies: v.dependencies ?? {},
    },
    null,
    2,
  )
  const files: Record<string, string> = {
    'package.json': `${packageJson}\n`,
    ...(v.files ?? { 'index.js': `module.exports = ${JSON.stringify(`${name}@${v.version}`)}\n` }),
  }
  const bytes = gzipSync(tar(Object.entries(files).map(([path, text]) => ({ path: `package/${path}`, body: Buffer.from(text) }))))
  return {
    name,
    version: v.version,
    path: tarballPath(name, v.version),
    bytes,
    integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
    shasum: createHash('sha1').update(bytes).digest('hex'),
    files,
  }
}

/** A ustar archive of regular files (paths under 100 bytes), ending in two zero blocks. */
export function tar(entries: readonly { path: string; body: Buffer }[]): Buffer {
  const blocks: Buffer[] = []
  for (const { path, body } of entries) {
    if (Buffer.byteLength(path) >= 100) throw new Error(`tar: path too long: ${path}`)
    const header = Buffer.alloc(512)
    header.write(path, 0, 100, 'utf8')
    header.write('0000644\0', 100, 'ascii') // mode
    header.write('0000000\0', 108, 'ascii') // uid
    header.write('0000000\0', 116, 'ascii') // gid
    header.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124, 'ascii')
    header.write(`${(1_704_067_200).toString(8).padStart(11, '0')}\0`, 136, 'ascii') // mtime 2024-01-01
    header.write('        ', 148, 'ascii') // checksum field counts as spaces while summing
    header.write('0', 156, 'ascii') // regular file
    header.write('ustar\0', 257, 'ascii')
    header.write('00', 263, 'ascii')
    let sum = 0
    for (const byte of header) sum += byte
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii')
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}
