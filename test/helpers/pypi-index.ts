// test/helpers/pypi-index.ts
// A local Python package index in two origins, as a public index is laid out: a simple index
// (PEP 503 HTML and PEP 691 JSON, negotiated by Accept, root page included) whose project page
// links to a separate files origin, which serves one wheel built here. No validators, no
// Cache-Control: the mirror's pypi profile alone decides how each is cached.

import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TestContext } from 'node:test'
import { crc32, gzipSync } from 'node:zlib'
import { isNotModified, sendBody, startOrigin, type Origin } from './origin.js'

export const PEP691_JSON = 'application/vnd.pypi.simple.v1+json'
export const PEP691_HTML = 'application/vnd.pypi.simple.v1+html'

export interface PypiIndexOptions {
  /** The project's name as its page is addressed (normalized, PEP 503); default `cachemir-demo`. */
  readonly project?: string
  /** The version of the one wheel; default `1.0`. */
  readonly version?: string
  /** gzip the simple pages when the client accepts it (as public indexes do); default false. */
  readonly gzip?: boolean
  /** Pages carry an ETag (one per form and version) and answer If-None-Match with 304; default false. */
  readonly etag?: boolean
  /** false: an index that speaks PEP 503 HTML only, whatever the Accept; default true. */
  readonly json?: boolean
  /**
   * `files-host` (default): the pages link the files origin by absolute URL, as public indexes do.
   * `absolute-path`: the index serves the wheel itself and links it as `/packages/…` (PEP 503 and
   * PEP 691 let links be relative to the page).
   */
  readonly links?: 'files-host' | 'absolute-path'
}

export interface PypiIndex {
  /** The simple index: `/simple/` and `/simple/<project>/`. */
  readonly index: Origin
  /** The files host: the wheel at `wheelPath`, 404 for everything else (with `links: 'absolute-path'` the index serves it instead). */
  readonly files: Origin
  readonly project: string
  readonly version: string
  /** `cachemir_demo-1.0-py3-none-any.whl` */
  readonly wheelName: string
  /** `/packages/xx/yy/<wheelName>` on the files origin (or the index). */
  readonly wheelPath: string
  readonly wheel: Buffer
  /** Hex sha256 of `wheel`, as the pages publish it. */
  readonly wheelSha256: string
  /** What each page request to the index got, in arrival order: `html`, `json`, `html 304`, `json 304` or `404`. */
  readonly served: string[]
}

/** Starts the files origin, then the index that links to it. Both close in t.after. */
export async function startPypiIndex(t: TestContext, options: PypiIndexOptions = {}): Promise<PypiIndex> {
  const project = options.project ?? 'cachemir-demo'
  const version = options.version ?? '1.0'
  const wheel = buildWheel(project, version)
  const wheelName = `${distName(project)}-${version}-py3-none-any.whl`
  const wheelSha256 = createHash('sha256').update(wheel).digest('hex')
  const wheelPath = `/packages/${wheelSha256.slice(0, 2)}/${wheelSha256.slice(2, 4)}/${wheelName}`
  const served: string[] = []

  const onIndex = options.links === 'absolute-path'
  const sendWheel = (req: IncomingMessage, res: ServerResponse): Promise<void> =>
    sendBody(req, res, wheel, { headers: { 'content-type': 'application/octet-stream' } })
  const files = await startOrigin(t, (req, res) => (!onIndex && req.url === wheelPath ? sendWheel(req, res) : notFound(req, res)))
  const fileUrl = onIndex ? wheelPath : `${files.url}${wheelPath}`

  const index = await startOrigin(t, (req, res) => {
    const path = (req.url ?? '').split('?', 1)[0]
    if (onIndex && path === wheelPath) return sendWheel(req, res)
    const form = options.json !== false && prefersJson(req) ? 'json' : 'html'
    let body: string
    if (path === '/simple/') body = form === 'json' ? rootJson(project) : rootHtml(project)
    else if (path === `/simple/${project}/`)
      body = form === 'json' ? projectJson(project, wheelName, fileUrl, wheelSha256) : projectHtml(project, wheelName, fileUrl, wheelSha256)
    else {
      served.push('404')
      return notFound(req, res)
    }
    const headers: Record<string, string> = { 'content-type': form === 'json' ? PEP691_JSON : 'text/html; charset=utf-8' }
    if (options.etag === true) {
      const etag = `"${form}-${path === '/simple/' ? 'root' : version}"`
      headers['etag'] = etag
      if (isNotModified(req, { etag })) {
        served.push(`${form} 304`)
        res.writeHead(304, headers)
        return void res.end()
      }
    }
    served.push(form)
    if (options.gzip === true && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
      headers['content-encoding'] = 'gzip'
      return sendBody(req, res, gzipSync(body), { headers })
    }
    return sendBody(req, res, Buffer.from(body), { headers })
  })

  return { index, files, project, version, wheelName, wheelPath, wheel, wheelSha256, served }
}

function notFound(req: IncomingMessage, res: ServerResponse): Promise<void> {
  return sendBody(req, res, Buffer.from('not found\n'), { status: 404, headers: { 'content-type': 'text/plain' } })
}

/** PEP 691 "Version + Format Selection": the JSON form when its q is highest (ties go to JSON). */
function prefersJson(req: IncomingMessage): boolean {
  let json = 0
  let html = 0
  for (const part of (req.headers.accept ?? '').split(',')) {
    const [type = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase())
    const qParam = params.find((p) => p.startsWith('q='))
    const q = qParam === undefined ? 1 : Number(qParam.slice(2))
    if (type === PEP691_JSON || type === 'application/vnd.pypi.simple.latest+json') json = Math.max(json, q)
    else if (type === PEP691_HTML || type === 'application/vnd.pypi.simple.latest+html' || type === 'text/html' || type === '*/*')
      html = Math.max(html, q)
  }
  return json > 0 && json >= html
}

/** PEP 427: the distribution name in file names, `-` replaced by `_`. */
function distName(project: string): string {
  return project.replace(/[-_.]+/g, '_')
}

function rootHtml(project: string): string {
  return `<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0"><title>Simple index</title></head><body>\n<a href="/simple/${project}/">${project}</a>\n</body></html>\n`
}

function rootJson(project: string): string {
  return JSON.stringify({ meta: { 'api-version': '1.0' }, projects: [{ name: project }] })
}

function projectHtml(project: string, wheelName: string, fileUrl: string, sha256: string): string {
  return (
    `<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0"><title>Links for ${project}</title></head><body>\n` +
    `<h1>Links for ${project}</h1>\n<a href="${fileUrl}#sha256=${sha256}" data-requires-python="&gt;=3.7">${wheelName}</a><br />\n</body></html>\n`
  )
}

function projectJson(project: string, wheelName: string, fileUrl: string, sha256: string): string {
  return JSON.stringify({
    meta: { 'api-version': '1.0' },
    name: project,
    files: [{ filename: wheelName, url: fileUrl, hashes: { sha256 }, 'requires-python': '>=3.7' }],
  })
}

/**
 * A minimal valid wheel (PEP 427): `<pkg>/__init__.py` and a dist-info with METADATA, WHEEL and a
 * RECORD that hashes both, in a zip of stored (uncompressed) entries. The bytes depend only on
 * the name and version, so every run builds the same file.
 */
export function buildWheel(project: string, version: string): Buffer {
  const dist = distName(project)
  const info = `${dist}-${version}.dist-info`
  const entries: [string, Buffer][] = [
    [`${dist}/__init__.py`, Buffer.from(`__version__ = "${version}"\n`)],
    [
      `${info}/METADATA`,
      Buffer.from(`Metadata-Version: 2.1\nName: ${project}\nVersion: ${version}\nSummary: a wheel built by the cachemir tests\n`),
    ],
    [`${info}/WHEEL`, Buffer.from('Wheel-Version: 1.0\nGenerator: cachemir-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n')],
  ]
  const record = entries.map(([name, data]) => `${name},sha256=${createHash('sha256').update(data).digest('base64url')},${data.length}`)
  entries.push([`${info}/RECORD`, Buffer.from(`${record.join('\n')}\n${info}/RECORD,,\n`)])
  return zipStored(entries)
}

/** A zip archive (APPNOTE 6.3) of stored entries, dated 1980-01-01, with a central directory. */
function zipStored(entries: readonly [string, Buffer][]): Buffer {
  const locals: Buffer[] = []
  const centrals: Buffer[] = []
  let offset = 0
  for (const [name, data] of entries) {
    const nameBytes = Buffer.from(name, 'utf8')
    const crc = crc32(data)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4) // version needed
    local.writeUInt16LE(0x0800, 6) // UTF-8 names
    local.writeUInt16LE(0, 8) // stored
    local.writeUInt16LE(0, 10) // time 00:00
    local.writeUInt16LE(0x21, 12) // date 1980-01-01
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(data.length, 18)
    local.writeUInt32LE(data.length, 22)
    local.writeUInt16LE(nameBytes.length, 26)
    local.writeUInt16LE(0, 28)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE(0x0314, 4) // made by: Unix, 2.0
    central.writeUInt16LE(20, 6)
    central.writeUInt16LE(0x0800, 8)
    central.writeUInt16LE(0, 10)
    central.writeUInt16LE(0, 12)
    central.writeUInt16LE(0x21, 14)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(data.length, 20)
    central.writeUInt32LE(data.length, 24)
    central.writeUInt16LE(nameBytes.length, 28)
    central.writeUInt32LE((0o100644 << 16) >>> 0, 38) // external attributes: a regular file, rw-r--r--
    central.writeUInt32LE(offset, 42)
    locals.push(local, nameBytes, data)
    centrals.push(central, nameBytes)
    offset += local.length + nameBytes.length + data.length
  }
  const directory = Buffer.concat(centrals)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(entries.length, 8)
  end.writeUInt16LE(entries.length, 10)
  end.writeUInt32LE(directory.length, 12)
  end.writeUInt32LE(offset, 16)
  return Buffer.concat([...locals, directory, end])
}
