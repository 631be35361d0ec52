// src/integrity/stored-metadata.ts
// What the digest finders read of the cache: the body of a stored metadata document (npm package
// document, PyPI project page, apt Packages index), decoded of its Content-Encoding and streamed
// in chunks, so that it is searched in bounded memory. Never a fetch: only what is cached counts.

import type { IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'
import type { Route } from '../config-types.js'
import type { CachedEntry } from '../cache/entry.js'
import type { TieredStore } from '../cache/tiered-store.js'
import { getRaw } from '../http/headers.js'
import { variantKey, varyRecord } from '../proxy/cache-key.js'
import type { MetadataCatalog } from './metadata-catalog.js'

/** Bytes read from a body file at a time. */
const READ_BYTES = 64 * 1024

/** The finders' read access to cached metadata. */
export interface StoredMetadata {
  /**
   * The body of the stored 200 answer for the URL (or representation) key `key`, decoded of its
   * Content-Encoding, as chunks; undefined when nothing usable is stored. A URL whose answers vary
   * is looked up under the variants stored in this process and the one the file's request selects.
   */
  read(key: string): Promise<AsyncIterable<Buffer> | undefined>
  /** Keys of the apt indexes stored on `route` in this process, most recent first. */
  indexKeys(route: Route): readonly string[]
}

/** StoredMetadata over the mirror's store, for one file request (whose headers select variants). */
export class CachedMetadata implements StoredMetadata {
  readonly #store: TieredStore
  readonly #catalog: MetadataCatalog
  readonly #headers: IncomingHttpHeaders

  constructor(store: TieredStore, catalog: MetadataCatalog, headers: IncomingHttpHeaders) {
    this.#store = store
    this.#catalog = catalog
    this.#headers = headers
  }

  async read(key: string): Promise<AsyncIterable<Buffer> | undefined> {
    const entry = await this.#find(key)
    if (entry === undefined) return undefined
    const coding = (getRaw(entry.meta.headers, 'content-encoding') ?? 'identity').trim().toLowerCase()
    const raw = await this.#open(entry)
    if (raw === undefined) return undefined
    if (coding === 'identity' || coding === '') return raw
    if (coding === 'gzip' || coding === 'x-gzip' || coding === 'deflate' || coding === 'br') return decoded(raw, coding)
    // Another coding (zstd, or a list of them): not read.
    raw.destroy()
    return undefined
  }

  indexKeys(route: Route): readonly string[] {
    return this.#catalog.indexKeys(route.prefix)
  }

  /** The stored 200 for `key`: its plain entry, a variant stored in this process, or the variant this request selects. */
  async #find(key: string): Promise<CachedEntry | undefined> {
    const plain = await this.#store.lookup(key)
    if (plain !== undefined) return plain.meta.status === 200 ? plain : undefined
    for (const storeKey of this.#catalog.storeKeys(key)) {
      const variant = await this.#store.lookup(storeKey)
      if (variant !== undefined && variant.meta.status === 200) return variant
    }
    const { names, generation } = await this.#store.varyFor(key)
    if (names === null) return undefined
    const variant = await this.#store.lookup(variantKey(key, generation, varyRecord(names, this.#headers)))
    return variant?.meta.status === 200 ? variant : undefined
  }

  /** The entry's stored bytes as a stream: from memory, or read from its body file in chunks. */
  async #open(entry: CachedEntry): Promise<Readable | undefined> {
    const body = entry.body
    if (body !== undefined) return Readable.from(inChunks(body), { objectMode: false })
    const fh = await this.#store.openBody(entry)
    if (fh === undefined) return undefined
    // autoClose: the handle is closed at the end, on an error, and when the reader stops early.
    return fh.createReadStream({ highWaterMark: READ_BYTES, autoClose: true })
  }
}

/** A body in memory as READ_BYTES slices (no copies), so a search sees chunks as from disk. */
function* inChunks(body: Buffer): Generator<Buffer> {
  for (let pos = 0; pos < body.length; pos += READ_BYTES) yield body.subarray(pos, pos + READ_BYTES)
}

/**
 * `source` decoded by zlib, as chunks. The reader may stop early: both streams are destroyed then.
 * A damaged stream ends the chunks with an error, which the finder treats as "not found".
 */
export async function* decoded(source: Readable, coding: 'gzip' | 'x-gzip' | 'deflate' | 'br'): AsyncGenerator<Buffer> {
  const decoder = coding === 'br' ? createBrotliDecompress() : coding === 'deflate' ? createInflate() : createGunzip()
  const piped = pipeline(source, decoder).catch(() => {})
  try {
    for await (const chunk of decoder as AsyncIterable<Buffer>) yield chunk
  } finally {
    decoder.destroy()
    source.destroy()
    await piped
  }
}
