// src/profiles/rewrite-urls.ts
// Serve-time rewriting of metadata (npm documents, PyPI simple pages) so that the URLs it holds
// for files on the upstreams point at the mirror: each route's upstream base URL becomes the
// mirror's base plus that route's prefix, and so does an absolute-path reference (`href="/…"`)
// where the profile says how one opens. Streamed: only a pattern's length less one byte is held
// back between chunks, so a document of any size is rewritten in bounded memory.

import { Transform, type TransformCallback } from 'node:stream'
import type { Route } from '../config-types.js'
import type { BodyTransform } from '../respond/body-transform.js'
import { profileNamed } from './profiles.js'

/** `from` (an upstream base URL) -> the route prefix that serves it. */
export interface UrlMapping {
  readonly from: string
  readonly prefix: string
}

/** Every route's upstream base URLs, longest first, so a deeper upstream wins over its parent. */
export function upstreamMappings(routes: readonly Route[]): UrlMapping[] {
  const mappings = routes.flatMap((route) => route.upstreams.map((url) => ({ from: url.href, prefix: route.prefix })))
  return mappings.sort((a, b) => b.from.length - a.from.length)
}

/** The transform of a profile route whose metadata is rewritten; undefined for other routes. */
export function urlRewriteFor(route: Route, routes: readonly Route[]): BodyTransform | undefined {
  const profile = profileNamed(route.profile)
  if (profile?.rewrites === undefined) return undefined
  const mappings = upstreamMappings(routes)
  const openers = profile.pathReferenceOpeners ?? []
  return {
    name: openers.length === 0 ? 'urls-v1' : 'urls-v2',
    usesBase: true,
    applies: (relativePath, headers) => profile.rewrites?.(relativePath, headers) === true,
    create: ({ base }) =>
      new UrlRewriter([
        ...mappings.map((m) => ({ from: Buffer.from(m.from), to: Buffer.from(base + m.prefix) })),
        ...pathReplacements(route, mappings, openers, base),
      ]),
    // The profile picks the representation of a negotiated target by Accept (variantOf answers
    // for such a target whatever the headers): say so, for the caches and clients downstream.
    varyFor: (relativePath) => (profile.variantOf?.(relativePath, {}) === undefined ? [] : ['Accept']),
  }
}

/**
 * For each opener (`href="`): an absolute-path reference resolves against the route's upstream,
 * so `/p…` after it becomes what the URL `<upstream origin>/p…` becomes. Under an upstream path a
 * route serves: the mirror's URL for it; elsewhere on that host: the absolute upstream URL, which
 * still works (a bare `/p…` on the mirror would not exist). `//` (another host) is left alone.
 * The route's first upstream stands for all of them: they serve the same paths.
 */
function pathReplacements(route: Route, mappings: readonly UrlMapping[], openers: readonly string[], base: string): Replacement[] {
  const upstream = route.upstreams[0]
  if (upstream === undefined) return []
  const sameHost = mappings.flatMap((m) => {
    const url = new URL(m.from)
    return url.origin === upstream.origin ? [{ path: url.pathname, to: base + m.prefix }] : []
  })
  if (!sameHost.some((m) => m.path === '/')) sameHost.push({ path: '/', to: `${upstream.origin}/` })
  return openers.flatMap((opener) => [
    { from: Buffer.from(`${opener}//`), to: Buffer.from(`${opener}//`) },
    ...sameHost.map((m) => ({ from: Buffer.from(opener + m.path), to: Buffer.from(opener + m.to) })),
  ])
}

interface Replacement {
  readonly from: Buffer
  readonly to: Buffer
}

/** Replaces every occurrence of each `from` with its `to`, longest `from` first at equal positions. */
export class UrlRewriter extends Transform {
  readonly #replacements: readonly Replacement[]
  readonly #holdBytes: number
  #carry: Buffer = Buffer.alloc(0)

  constructor(replacements: readonly Replacement[]) {
    super()
    this.#replacements = [...replacements].sort((a, b) => b.from.length - a.from.length)
    this.#holdBytes = Math.max(0, ...this.#replacements.map((r) => r.from.length - 1))
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const hold = this.#holdBytes
    let from = 0
    if (this.#carry.length > 0) {
      // The carry (at most `hold` bytes) joined with the chunk's first `hold` bytes holds every
      // match that starts in the carry. Joining only those, not the whole chunk, keeps the garbage
      // per chunk small: a copy of every chunk would be garbage the size of the document.
      const carried = this.#carry.length
      const head = Buffer.concat([this.#carry, chunk.subarray(0, hold)])
      if (head.length - carried === chunk.length) {
        // A chunk no longer than `hold`: all of it is in head.
        this.#carry = Buffer.from(head.subarray(this.#rewrite(head, Math.max(0, head.length - hold))))
        return done()
      }
      from = this.#rewrite(head, carried) - carried
    }
    // A match must start before `safe`; what follows may be the start of one cut by the chunk end.
    const kept = this.#rewrite(chunk, Math.max(from, chunk.length - hold), from)
    this.#carry = Buffer.from(chunk.subarray(kept))
    done()
  }

  override _flush(done: TransformCallback): void {
    const buf = this.#carry
    this.#carry = Buffer.alloc(0)
    this.#rewrite(buf, buf.length)
    done()
  }

  /**
   * Pushes `buf` from `from` rewritten up to `safe` (matches starting before it are complete, and
   * one may run past it); returns where it stopped.
   */
  #rewrite(buf: Buffer, safe: number, from = 0): number {
    let pos = from
    // Where each pattern next occurs (-1: nowhere), searched again only once passed.
    const next = this.#replacements.map((r) => buf.indexOf(r.from, from))
    for (;;) {
      let at = -1
      let hit = -1
      for (let k = 0; k < next.length; k++) {
        let i = next[k] as number
        if (i >= 0 && i < pos) next[k] = i = buf.indexOf((this.#replacements[k] as Replacement).from, pos)
        if (i >= 0 && i < safe && (at < 0 || i < at)) {
          at = i
          hit = k
        }
      }
      if (hit < 0) break
      const r = this.#replacements[hit] as Replacement
      if (at > pos) this.push(buf.subarray(pos, at))
      this.push(r.to)
      pos = at + r.from.length
    }
    const end = Math.max(pos, safe)
    if (end > pos) this.push(buf.subarray(pos, end))
    return end
  }
}
