// src/integrity/apt-digest.ts
// apt repositories: a `by-hash/SHA256/<hex>` (or SHA512) file must hash to the digest its path
// names; a package under pool/ to the `SHA256:` of its stanza in a cached Packages index (plain,
// gzip, or xz through the system's `xz`, as apt prefers; bzip2 is not read) of the same archive and
// architecture.
// A pool path does not name its suite, so the indexes tried are those this process has stored.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { decodedOrUndefined, digestFromHex, type DigestAlgorithm, type DigestFinder, type ExpectedDigest } from './expected-digest.js'
import { findNear } from './find-near.js'
import { decoded } from './stored-metadata.js'

/** `…/by-hash/SHA256/<hex>`: a file named for its own digest. */
const BY_HASH = /(?:^|\/)by-hash\/(SHA256|SHA512)\/([0-9a-f]+)$/
/** A binary package under pool/: the archive root before it (the directory holding dists/ and pool/), and its Filename. */
const POOL_PACKAGE = /^((?:[^?]*\/)?)(pool\/[^?]+_([a-z0-9-]+)\.u?deb)$/
/** A binary Packages index (or a by-hash copy of one): its archive root and architecture. */
const INDEX = /^((?:[^?]*\/)?)dists\/[^?]+\/binary-([^/?]+)\/(?:Packages(?:\.gz|\.xz)?|by-hash\/SHA256\/[0-9a-f]{64})$/
/** A stanza lists a package's fields on consecutive lines; this much around its Filename holds its SHA256. */
const AROUND = { before: 8 * 1024, after: 8 * 1024 }
/** Indexes searched for one package, at most (most recently stored first). */
const MAX_INDEXES = 16

export const aptDigest: DigestFinder = {
  algorithms: ['sha256', 'sha512'],
  covers: (relativePath) => BY_HASH.test(relativePath) || POOL_PACKAGE.test(relativePath),
  metadataKind: (relativePath) => (INDEX.test(relativePath) ? 'index' : undefined),
  async find({ route, relativePath, stored }) {
    const byHash = BY_HASH.exec(relativePath)
    if (byHash !== null) {
      const algorithm: DigestAlgorithm = byHash[1] === 'SHA512' ? 'sha512' : 'sha256'
      return digestFromHex(algorithm, byHash[2] ?? '', route.prefix + relativePath)
    }
    const pool = POOL_PACKAGE.exec(relativePath)
    if (pool === null) return undefined
    const [, root, requested = '', arch] = pool
    // apt percent-encodes the name it asks for (`1.0+dfsg` as `1.0%2bdfsg`); the index has it plain.
    const filename = decodedOrUndefined(requested) ?? requested
    const needle = Buffer.from(`Filename: ${filename}\n`)
    let tried = 0
    for (const key of stored.indexKeys(route)) {
      const index = INDEX.exec(key.slice(route.prefix.length))
      // The same archive, and the package's architecture (`all` packages are listed in every one).
      if (index === null || index[1] !== root || (arch !== 'all' && index[2] !== arch)) continue
      if (++tried > MAX_INDEXES) break
      const chunks = await stored.read(key)
      if (chunks === undefined) continue
      const found = await findNear(indexText(chunks), needle, AROUND, (window, at) => stanzaDigest(window, at, key))
      if (found !== undefined) return found
    }
    return undefined
  },
}

/** The SHA256 of the stanza whose `Filename:` line starts at `at`, when it is a line of its own. */
export function stanzaDigest(window: Buffer, at: number, source: string): ExpectedDigest | undefined {
  if (at > 0 && window[at - 1] !== 0x0a) return undefined
  // The stanza: from the blank line before to the blank line after (or the window's ends).
  const start = window.lastIndexOf('\n\n', at)
  const end = window.indexOf('\n\n', at)
  const stanza = window.toString('latin1', start < 0 ? 0 : start + 1, end < 0 ? window.length : end + 1)
  const sha256 = /(?:^|\n)SHA256: *([0-9a-fA-F]{64})\n/.exec(stanza)?.[1]
  return sha256 === undefined ? undefined : digestFromHex('sha256', sha256, source)
}

/**
 * An index's text: gunzipped when it is gzip, unpacked by `xz -dc` when it is xz (by the first
 * bytes: a by-hash name does not say), as is when it is plain text; nothing for bzip2, or for xz
 * where the machine has no `xz`.
 */
async function* indexText(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = chunks[Symbol.asyncIterator]()
  try {
    const first = await it.next()
    if (first.done === true) return
    const head = first.value
    if (head[0] === 0x1f && head[1] === 0x8b) {
      yield* decoded(Readable.from(resumed(head, it)), 'gzip')
      return
    }
    if (head.subarray(0, 6).equals(XZ_MAGIC)) {
      yield* unxz(resumed(head, it))
      return
    }
    // bzip2 ("BZh"): not read.
    if (head.subarray(0, 3).toString('latin1') === 'BZh') return
    yield head
    for (let next = await it.next(); next.done !== true; next = await it.next()) yield next.value
  } finally {
    await it.return?.()
  }
}

/** `head`, then the rest of `it`. */
async function* resumed(head: Buffer, it: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield head
  for (let next = await it.next(); next.done !== true; next = await it.next()) yield next.value
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])

/**
 * `compressed` unpacked by the system's `xz -dc`, streamed both ways (Node has no xz decoder).
 * Nothing when `xz` cannot run or fails; the child is killed as soon as the reader stops.
 */
async function* unxz(compressed: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const child = spawn('xz', ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] })
  child.on('error', () => {})
  child.stdin.on('error', () => {})
  const feeding = (async () => {
    for await (const chunk of compressed) {
      if (child.stdin.destroyed) return
      if (!child.stdin.write(chunk)) await once(child.stdin, 'drain')
    }
    child.stdin.end()
  })().catch(() => child.kill())
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer
  } finally {
    child.kill()
    await feeding
  }
}
