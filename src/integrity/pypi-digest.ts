// src/integrity/pypi-digest.ts
// Python package indexes: a distribution file's digest is the `#sha256=` fragment of its link on
// the cached project page (PEP 503 HTML), or its `hashes.sha256` (PEP 691 JSON). The files are
// often served from another host, and so another route, than the pages: the project page is
// looked for on every route with the pypi profile, by the project name in the file's name.

import type { Route } from '../config-types.js'
import { representationKeys } from '../proxy/cache-key.js'
import { decodedOrUndefined, digestFromHex, type DigestFinder, type ExpectedDigest } from './expected-digest.js'
import { findNear } from './find-near.js'
import { objectAround } from './json-object.js'

/** A distribution file (wheel, sdist, egg), not its `.metadata` companion: its name, as requested. */
const DISTRIBUTION = /(?:^|\/)([^/?]+\.(?:whl|tar\.gz|tar\.bz2|tgz|zip|egg))$/
/** A project page of the simple API. */
const PROJECT_PAGE = /^simple\/[^/?]+\/?$/
/** Around a link or a file entry: an entry holds a few URLs and digests. */
const AROUND = { before: 8 * 1024, after: 8 * 1024 }
const SHA256_HEX = 64

export const pypiDigest: DigestFinder = {
  algorithms: ['sha256'],
  covers: (relativePath) => DISTRIBUTION.test(relativePath),
  metadataKind: (relativePath) => (PROJECT_PAGE.test(relativePath) ? 'document' : undefined),
  async find({ relativePath, routes, stored }) {
    const file = DISTRIBUTION.exec(relativePath)?.[1]
    if (file === undefined) return undefined
    const name = decodedOrUndefined(file)
    const project = name === undefined ? undefined : projectOf(name)
    if (name === undefined || project === undefined) return undefined
    for (const route of routes.filter((r) => r.profile === 'pypi')) {
      for (const page of projectPageKeys(route, project)) {
        const chunks = await stored.read(page)
        if (chunks === undefined) continue
        // The JSON form (PEP 691) names the file in its `filename`; the HTML form (PEP 503) links to it.
        const found = page.endsWith('\u0000pypi-json')
          ? await findNear(chunks, Buffer.from(JSON.stringify(name)), AROUND, (w, at) =>
              objectAround(w, at, (o) => fileDigest(o, name, page)),
            )
          : await findNear(chunks, Buffer.from(`${file}#sha256=`), AROUND, (w, at) => linkDigest(w, at, file.length, page))
        if (found !== undefined) return found
      }
    }
    return undefined
  },
}

/** The keys a project's page may be cached under on `route`: with and without the trailing slash, each representation. */
function projectPageKeys(route: Route, project: string): string[] {
  return [`simple/${project}/`, `simple/${project}`].flatMap((path) => representationKeys(route, route.prefix + path))
}

/**
 * The project a distribution file belongs to, normalized (PEP 503): a wheel's name is its first
 * `-` field (PEP 427); an sdist's runs up to the `-` that starts its version.
 */
export function projectOf(file: string): string | undefined {
  const name = file.endsWith('.whl') ? file.split('-', 1)[0] : /^(.+?)-\d[^-]*\.(?:tar\.gz|tar\.bz2|tgz|zip|egg)$/.exec(file)?.[1]
  if (name === undefined || name === '' || name === file) return undefined
  return name.toLowerCase().replace(/[-_.]+/g, '-')
}

/** The digest of a link `…/<file>#sha256=<hex>` whose name starts at `at` (the needle is the name and `#sha256=`). */
export function linkDigest(window: Buffer, at: number, fileBytes: number, source: string): ExpectedDigest | undefined {
  // The name must be a whole path segment of the link: after a `/`, a quote, or `href=`.
  const before = at > 0 ? window[at - 1] : undefined
  if (before !== undefined && before !== 0x2f && before !== 0x22 && before !== 0x27 && before !== 0x3d) return undefined
  const start = at + fileBytes + '#sha256='.length
  const hex = window.toString('latin1', start, start + SHA256_HEX)
  const next = window[start + SHA256_HEX]
  if (next !== undefined && /[0-9a-fA-F]/.test(String.fromCharCode(next))) return undefined
  return digestFromHex('sha256', hex, source)
}

/** The digest in a PEP 691 file entry, when it is the entry of `name`. */
export function fileDigest(entry: Record<string, unknown>, name: string, source: string): ExpectedDigest | undefined {
  if (entry.filename !== name) return undefined
  const hashes = entry.hashes
  if (typeof hashes !== 'object' || hashes === null || !('sha256' in hashes)) return undefined
  return typeof hashes.sha256 === 'string' ? digestFromHex('sha256', hashes.sha256, source) : undefined
}
