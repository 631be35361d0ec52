// src/respond/body-transform.ts
// A route's streaming transform of the bodies it serves (a package index whose URLs point at the
// mirror, say), and the one place that adjusts the headers such a transform invalidates.
//
// The cache always holds the upstream's bytes; the transform runs at serve time, for cached and
// filling responses alike. A transformed response:
// - has no Content-Length (it is sent chunked): its length is known only once it has been sent;
// - carries an ETag derived from the upstream's (`"abc"` -> `"abc+name"`, weak stays weak), so a
//   client never pairs the rewritten bytes with the original's validator, and conditional requests
//   made with the derived tag still get 304 from the cache;
// - ignores Range and If-Range (RFC 9110 §14.2 lets a server send the whole representation) and
//   drops Accept-Ranges and the digests of the original bytes;
// - from a gzip, deflate or br body: is decoded for the transform, and encoded again the same way
//   when the client accepts that coding, else sent as identity (the ETag then says so too);
// - names in Vary the request headers the route chose this representation by (a profile's Accept
//   negotiation), which the upstream may not have declared.

import { Duplex, pipeline, type Transform } from 'node:stream'
import {
  brotliCompressSync,
  brotliDecompressSync,
  deflateSync,
  gunzipSync,
  gzipSync,
  inflateSync,
  constants as zlibConstants,
  createBrotliCompress,
  createBrotliDecompress,
  createGunzip,
  createGzip,
  createInflate,
  createDeflate,
} from 'node:zlib'
import { getRaw, splitList, type RawHeaders } from '../http/headers.js'

/** What one response's transform may depend on besides the body. */
export interface TransformContext {
  /** The mirror's base URL as this client reaches it, without a trailing slash: `http://mirror:8080`. */
  readonly base: string
}

/** What a route does to the bodies it serves. Routes without one serve the stored bytes unchanged. */
export interface BodyTransform {
  /**
   * Names the transform (and its version) in derived ETags: lower-case letters, digits and `-`.
   * Change it when the transform's output changes, so clients' validators stop matching.
   */
  readonly name: string
  /** Whether a 200 response for this target, with these stored headers, is transformed at all. */
  applies(relativePath: string, headers: RawHeaders): boolean
  /** A new stream for one response body. It must not keep references to chunks it has passed on. */
  create(context: TransformContext): Transform
  /** The output depends on `context.base`: the derived ETag then names the base too. */
  readonly usesBase?: boolean
  /**
   * Request headers besides the coding that select the representation served for this target
   * (a profile's negotiation, `['Accept']`): added to Vary unless the upstream's names them.
   */
  varyFor?(relativePath: string): readonly string[]
}

/** A transform bound to one request's context: what the senders use. */
export interface ServedTransform {
  /** The derived-ETag name, including what of the context the output depends on. */
  readonly name: string
  applies(relativePath: string, headers: RawHeaders): boolean
  create(): Transform
  varyFor?(relativePath: string): readonly string[]
}

/** A transform as it applies to one stored response: codings decided, headers derivable. */
export interface AppliedTransform {
  /** `name`, plus `.identity` when a coded body is sent decoded. */
  readonly name: string
  /** The stored body's coding, undefined for identity. */
  readonly source: Coding | undefined
  /** The coding sent, undefined for identity. */
  readonly output: Coding | undefined
  /** Request headers the representation was selected by, for Vary (besides Accept-Encoding). */
  readonly vary: readonly string[]
  create(): Duplex
  /** The whole transformed body of a small one, with the codings done synchronously (no thread pool hops). */
  whole(body: Buffer): Promise<Buffer>
}

type Coding = 'gzip' | 'deflate' | 'br'

/**
 * Bodies up to this size are transformed whole and sent with a Content-Length (npm's own cache
 * keeps only documents whose size it was told); a fill of one is waited for, then served stored.
 */
export const WHOLE_TRANSFORM_BYTES = 1024 * 1024

const NAME = /^[a-z0-9-]+$/

/** Fields that describe the original bytes and do not hold for the transformed ones. */
const DROPPED = new Set(['content-length', 'accept-ranges', 'content-md5', 'digest', 'content-digest', 'repr-digest'])

/** Throws for a transform whose name could not sit inside an ETag. */
export function checkTransform(transform: BodyTransform): BodyTransform {
  if (!NAME.test(transform.name)) throw new TypeError(`body transform name: expected [a-z0-9-]+, got "${transform.name}"`)
  return transform
}

/** `transform` for one request: its context bound, its name naming the base when the output uses it. */
export function bindTransform(transform: BodyTransform, context: TransformContext, baseTag: () => string): ServedTransform {
  const served: ServedTransform = {
    name: transform.usesBase === true ? `${transform.name}.${baseTag()}` : transform.name,
    applies: (relativePath, headers) => transform.applies(relativePath, headers),
    create: () => transform.create(context),
  }
  const varyFor = transform.varyFor?.bind(transform)
  return varyFor === undefined ? served : { ...served, varyFor }
}

/**
 * The transform that applies to this response, or undefined: no transform for the route, another
 * status than 200, a coding the mirror cannot decode, or a target the transform leaves alone.
 * `acceptEncoding` is the client's, deciding whether a coded body is encoded again.
 */
export function transformFor(
  transform: ServedTransform | undefined,
  status: number,
  relativePath: string,
  headers: RawHeaders,
  acceptEncoding: string | undefined,
): AppliedTransform | undefined {
  if (transform === undefined || status !== 200) return undefined
  const coding = codingOf(getRaw(headers, 'content-encoding'))
  if (coding === null || !transform.applies(relativePath, headers)) return undefined
  const vary = transform.varyFor?.(relativePath) ?? []
  if (coding === undefined) {
    return {
      name: transform.name,
      source: undefined,
      output: undefined,
      vary,
      create: () => transform.create(),
      whole: (b) => runWhole(transform, b),
    }
  }
  const output = accepts(acceptEncoding, coding) ? coding : undefined
  return {
    name: output === undefined ? `${transform.name}.identity` : transform.name,
    source: coding,
    output,
    vary,
    whole: async (body) => {
      const out = await runWhole(transform, decodeSync(coding, body))
      return output === undefined ? out : encodeSync(coding, out)
    },
    create: () =>
      chain(output === undefined ? [decoder(coding), transform.create()] : [decoder(coding), transform.create(), encoder(coding)]),
  }
}

/** Derived header blocks, once per stored block and applied transform (stored blocks are never modified). */
const derived = new WeakMap<RawHeaders, Map<string, readonly string[]>>()

/** The stored header block as the transformed response carries it (see the file comment). */
export function transformedHeaders(stored: RawHeaders, applied: AppliedTransform): readonly string[] {
  let byName = derived.get(stored)
  if (byName === undefined) {
    byName = new Map()
    derived.set(stored, byName)
  }
  let out = byName.get(applied.name)
  if (out === undefined) {
    const next: string[] = []
    const varied = new Set<string>()
    for (let i = 0; i < stored.length; i += 2) {
      const name = stored[i] as string
      const value = stored[i + 1] as string
      const lower = name.toLowerCase()
      if (DROPPED.has(lower)) continue
      if (lower === 'content-encoding' && applied.output === undefined) continue
      if (lower === 'vary') for (const member of splitList(value)) varied.add(member.toLowerCase())
      next.push(name, lower === 'etag' ? deriveEtag(value, applied.name) : value)
    }
    // Whether the body goes out coded now depends on the request's Accept-Encoding, and which
    // representation it is on the headers the route negotiated by.
    const missing = (applied.source === undefined ? applied.vary : ['Accept-Encoding', ...applied.vary]).filter(
      (name) => !varied.has('*') && !varied.has(name.toLowerCase()),
    )
    if (missing.length > 0) next.push('Vary', missing.join(', '))
    out = next
    byName.set(applied.name, out)
  }
  return out
}

/** `"abc"` -> `"abc+name"`, `W/"abc"` -> `W/"abc+name"`; a malformed tag is kept (it never matches anyway). */
export function deriveEtag(etag: string, name: string): string {
  const value = etag.trim()
  if (!value.endsWith('"') || value.length < 2) return etag
  return `${value.slice(0, -1)}+${name}"`
}

/** undefined for identity, null for a coding (or a list of them) the mirror does not decode. */
function codingOf(value: string | undefined): Coding | undefined | null {
  if (value === undefined) return undefined
  const codings = splitList(value)
    .map((c) => c.toLowerCase())
    .filter((c) => c !== 'identity')
  if (codings.length === 0) return undefined
  if (codings.length > 1) return null
  const only = codings[0]
  return only === 'gzip' || only === 'x-gzip' ? 'gzip' : only === 'deflate' ? 'deflate' : only === 'br' ? 'br' : null
}

/** RFC 9110 §12.5.3: the coding is acceptable when listed (or `*`) with a q above 0. */
function accepts(acceptEncoding: string | undefined, coding: Coding): boolean {
  if (acceptEncoding === undefined) return false
  let star = false
  for (const member of splitList(acceptEncoding)) {
    const [token = '', ...params] = member.split(';').map((s) => s.trim().toLowerCase())
    const q = params.find((p) => p.startsWith('q='))
    const weight = q === undefined ? 1 : Number(q.slice(2))
    if (token === coding || (coding === 'gzip' && token === 'x-gzip')) return weight > 0
    if (token === '*') star = weight > 0
  }
  return star
}

function decoder(coding: Coding): Transform {
  return coding === 'gzip' ? createGunzip() : coding === 'deflate' ? createInflate() : createBrotliDecompress()
}

/**
 * Encoders tuned for speed: the body is coded again for every response (the cache keeps the
 * upstream's bytes), so zlib's fastest level and a low brotli quality; the bench's packages
 * scenario measured the default levels at several ms per npm document.
 */
function encoder(coding: Coding): Transform {
  if (coding === 'gzip') return createGzip({ level: zlibConstants.Z_BEST_SPEED })
  if (coding === 'deflate') return createDeflate({ level: zlibConstants.Z_BEST_SPEED })
  return createBrotliCompress({ params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 4 } })
}

/** One stream of several: writes go to the first, reads come from the last; an error anywhere ends it. */
function chain(stages: readonly Transform[]): Duplex {
  const duplex = Duplex.from({ writable: stages[0], readable: stages[stages.length - 1] })
  pipeline([...stages], (err) => {
    if (err) duplex.destroy(err)
  })
  return duplex
}

/** Runs `transform` over one whole body. */
function runWhole(transform: ServedTransform, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const stream = transform.create()
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.once('end', () => resolve(Buffer.concat(chunks)))
    stream.once('error', reject)
    stream.end(body)
  })
}

function decodeSync(coding: Coding, body: Buffer): Buffer {
  return coding === 'gzip' ? gunzipSync(body) : coding === 'deflate' ? inflateSync(body) : brotliDecompressSync(body)
}

function encodeSync(coding: Coding, body: Buffer): Buffer {
  if (coding === 'gzip') return gzipSync(body, { level: zlibConstants.Z_BEST_SPEED })
  if (coding === 'deflate') return deflateSync(body, { level: zlibConstants.Z_BEST_SPEED })
  return brotliCompressSync(body, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 4 } })
}
