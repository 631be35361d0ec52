// src/cache/disk-layout.ts
// Where an entry's files live and what they are called: the layout version, the bucket fan-out,
// file names, versions of body files, and the hash of a key that names them all.
//
// Layout (version 1), under <cacheDir>/cachemir-v1/objects/<first two hex of hash>/:
//   <hash>.meta                      magic line with a checksum, then the EntryMeta JSON
//   <hash>.<id>.<bytes>.body         the body; a new id for every stored version
//   <hash>.vary                      for a URL whose responses vary: the header names (JSON)
//   .tmp-…                           bodies being filled and metas being written

import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'

export const LAYOUT_DIR = 'cachemir-v1'
/** Starts the name of every file being written; the start-up scan removes old ones. */
export const TEMP_PREFIX = '.tmp-'

/**
 * Recently hashed keys: a hot hit looks its key up in every request, and a sha256 costs more than
 * the rest of the lookup. Bounded by the bytes of the keys, so long URLs cannot grow it.
 */
const HASHES_MAX_KEY_BYTES = 4 * 1024 * 1024
let hashes = new Map<string, string>()
let hashedKeyBytes = 0

/** sha256(key), hex: names an entry's files and its slots in the memory tier and the disk index. */
export function hashKey(key: string): string {
  let hash = hashes.get(key)
  if (hash === undefined) {
    hash = createHash('sha256').update(key).digest('hex')
    // A plain map, emptied when full: cheaper per lookup than an LRU, and hot keys return at once.
    if (hashedKeyBytes > HASHES_MAX_KEY_BYTES) {
      hashes = new Map()
      hashedKeyBytes = 0
    }
    hashes.set(key, hash)
    hashedKeyBytes += key.length + 128
  }
  return hash
}

/** A stored body's version, `<id>.<bytes>`: the variable part of its file name, and a disk index slot's value. */
export type BodyVersion = string

export function bodyVersion(id: string, bytes: number): BodyVersion {
  // join() builds one flat string; a template literal builds a rope of three parts that the
  // index would keep alive, about 56 bytes more per entry.
  return [id, bytes].join('.')
}

export function bytesOfVersion(version: BodyVersion): number {
  return Number(version.slice(version.indexOf('.') + 1))
}

/** A fresh id for a body version (unique per stored version of an entry). */
export function newBodyId(): string {
  return randomBytes(6).toString('hex')
}

export function metaFileName(hash: string): string {
  return `${hash}.meta`
}

/** `<hash>.<id>.<bytes>.body`: the one place a body file's name is made. */
export function bodyFileName(hash: string, version: BodyVersion): string {
  return `${hash}.${version}.body`
}

/** `<hash>.<id>.<bytes>.body` -> `<id>.<bytes>`, or undefined for a name of another shape. */
export function versionOfBodyFile(file: string): BodyVersion | undefined {
  const m = /^[0-9a-f]{64}\.([0-9a-f]+)\.(\d+)\.body$/.exec(file)
  return m === null ? undefined : bodyVersion(m[1] as string, Number(m[2]))
}

/** What a file in a bucket is, by its name alone (checked in this order: a temp name may end like any other). */
export type FileKind = 'temp' | 'vary' | 'meta' | 'body' | 'other'

export function kindOfFile(name: string): FileKind {
  if (name.startsWith(TEMP_PREFIX)) return 'temp'
  if (name.endsWith('.vary')) return 'vary'
  if (name.endsWith('.meta')) return 'meta'
  if (name.endsWith('.body')) return 'body'
  return 'other'
}

/** The hash a `vary`, `meta` or `body` file belongs to (see kindOfFile). */
export function hashOfFile(name: string, kind: 'vary' | 'meta' | 'body'): string {
  return kind === 'body' ? name.slice(0, name.indexOf('.')) : name.slice(0, -5)
}

/** Whether a name in the objects directory is a bucket (two lowercase hex digits). */
export function isBucketName(name: string): boolean {
  return /^[0-9a-f]{2}$/.test(name)
}

/** The paths of one cache directory's files. */
export class DiskLayout {
  /** `<cacheDir>/cachemir-v1/objects`: holds the buckets. */
  readonly root: string

  constructor(cacheDir: string) {
    this.root = join(cacheDir, LAYOUT_DIR, 'objects')
  }

  /** The bucket `hash` falls in: one of at most 256, by its first two hex digits. */
  bucket(hash: string): string {
    return join(this.root, hash.slice(0, 2))
  }

  metaPath(hash: string): string {
    return join(this.bucket(hash), metaFileName(hash))
  }

  varyPath(hash: string): string {
    return join(this.bucket(hash), `${hash}.vary`)
  }

  bodyPath(hash: string, bodyFile: string): string {
    return join(this.bucket(hash), bodyFile)
  }

  /** Where a new body version is filled, next to its final place (so the rename stays in one directory). */
  tempBodyPath(hash: string, id: string): string {
    return join(this.bucket(hash), `${TEMP_PREFIX}${hash}.${id}.body`)
  }

  /** A temp file for a `meta` or `vary` record being written, in the record's bucket. */
  tempRecordPath(hash: string, ext: 'meta' | 'vary'): string {
    return join(this.bucket(hash), `${TEMP_PREFIX}${hash}.${randomBytes(4).toString('hex')}.${ext}`)
  }

  /** A temp file that proves the directory is writable. */
  probePath(): string {
    return join(this.root, `${TEMP_PREFIX}probe-${process.pid}-${randomBytes(4).toString('hex')}`)
  }
}
