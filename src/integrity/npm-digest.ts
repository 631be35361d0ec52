// src/integrity/npm-digest.ts
// npm: a tarball's digest is `dist.integrity` (Subresource Integrity, sha512 for anything
// published in the last years) or else `dist.shasum` (sha1, hex) of the version that lists it, in
// the cached package document (abbreviated or full). The document is searched for the tarball's
// URL and only that version's small `dist` object is parsed.

import { representationKeys } from '../proxy/cache-key.js'
import { digestFromBase64, digestFromHex, type DigestAlgorithm, type DigestFinder, type ExpectedDigest } from './expected-digest.js'
import { findNear } from './find-near.js'
import { objectAround } from './json-object.js'

/** `name/-/file.tgz` or `@scope/name/-/file.tgz` (also `@scope%2fname`): the package's path, and the file. */
const TARBALL = /^((?:@[^/%?]+(?:\/|%2[fF]))?[^/@%?][^/?]*)\/-\/([^/?]+\.tgz)$/
/** A package document's path below the prefix (as in profiles/npm.ts). */
const DOCUMENT = /^(@[^/%]+(\/|%2[fF]))?[^/@%?][^/?]*$/
/** A `dist` object is small (digests, a URL, signatures): this much on each side of the URL is enough. */
const AROUND = { before: 16 * 1024, after: 16 * 1024 }
/** SRI algorithms checked, strongest first (sha384 is not: npm never writes it). */
const SRI_ORDER: readonly DigestAlgorithm[] = ['sha512', 'sha256', 'sha1']

export const npmDigest: DigestFinder = {
  algorithms: SRI_ORDER,
  covers: (relativePath) => TARBALL.test(relativePath),
  metadataKind: (relativePath) => (DOCUMENT.test(relativePath) ? 'document' : undefined),
  async find({ route, relativePath, stored }) {
    const m = TARBALL.exec(relativePath)
    if (m === null) return undefined
    const [, name = '', file = ''] = m
    const needle = Buffer.from(`/-/${file}"`)
    for (const path of documentPaths(name)) {
      // The plain key and each representation (abbreviated, full): any of them may list the version.
      for (const key of representationKeys(route, route.prefix + path)) {
        const chunks = await stored.read(key)
        if (chunks === undefined) continue
        const found = await findNear(chunks, needle, AROUND, (window, at) =>
          objectAround(window, at, (dist) => distDigest(dist, file, key)),
        )
        if (found !== undefined) return found
      }
    }
    return undefined
  },
}

/** The paths a package's document may be cached under: a scoped name is requested as `@scope%2fname` or `@scope/name`. */
function documentPaths(name: string): string[] {
  const scoped = /^(@[^/%]+)(?:\/|%2[fF])(.+)$/.exec(name)
  if (scoped === null) return [name]
  const [, scope = '', bare = ''] = scoped
  return [`${scope}%2f${bare}`, `${scope}%2F${bare}`, `${scope}/${bare}`]
}

/** The digest in a version's `dist` object, when that object is the one of `file`. */
export function distDigest(dist: Record<string, unknown>, file: string, source: string): ExpectedDigest | undefined {
  const { tarball, integrity, shasum } = dist
  if (typeof tarball !== 'string' || !tarball.endsWith(`/-/${file}`)) return undefined
  if (typeof integrity === 'string') {
    // SRI: space-separated `alg-base64[?options]`; the strongest known algorithm wins.
    const listed = new Map<string, string>()
    for (const item of integrity.trim().split(/\s+/)) {
      const dash = item.indexOf('-')
      if (dash > 0) listed.set(item.slice(0, dash), (item.slice(dash + 1).split('?', 1)[0] ?? '').trim())
    }
    for (const algorithm of SRI_ORDER) {
      const value = listed.get(algorithm)
      const digest = value === undefined ? undefined : digestFromBase64(algorithm, value, source)
      if (digest !== undefined) return digest
    }
  }
  return typeof shasum === 'string' ? digestFromHex('sha1', shasum, source) : undefined
}
