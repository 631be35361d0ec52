// src/cache/vary-records.ts
// The `<hash>.vary` files: for a URL whose responses vary, which request headers they vary on and
// the URL's current generation. Read on a miss, written atomically (temp file, then rename).

import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import type { DiskIndex } from './disk-index.js'
import type { DiskLayout } from './disk-layout.js'

/**
 * What a URL's responses vary on. `generation` is part of every variant's key and is raised when
 * the URL is invalidated, so variants stored before that can never be found again.
 */
export interface VaryMarker {
  readonly names: readonly string[] | null
  readonly generation: number
}

export class VaryRecords {
  readonly #layout: DiskLayout
  /** Its `complete` says when the start-up scan has listed every bucket. */
  readonly #index: DiskIndex
  /** Hashes with a `.vary` record: found by the scan, or written by this process. */
  readonly #hashes = new Set<string>()
  /**
   * Whether #hashes is the whole truth once the scan is done: not when other processes share
   * the directory (a worker group), since they write records this one does not see.
   */
  #hashesComplete = true

  constructor(layout: DiskLayout, index: DiskIndex) {
    this.#layout = layout
    this.#index = index
  }

  /** Other processes write to this cache directory too (see #hashesComplete). */
  shared(): void {
    this.#hashesComplete = false
  }

  /** The start-up scan found a record for `hash`. */
  found(hash: string): void {
    this.#hashes.add(hash)
  }

  /** The Vary record of the URL hashed to `hash`, or undefined when there is none. */
  async read(hash: string): Promise<VaryMarker | undefined> {
    // Most URLs never vary: once the scan has listed every bucket, a URL without a record here
    // costs no file-system call (this matters on every miss).
    if (this.#index.complete && this.#hashesComplete && !this.#hashes.has(hash)) return undefined
    const text = await readFile(this.#layout.varyPath(hash), 'utf8').catch(() => undefined)
    if (text === undefined) return undefined
    try {
      const { names, generation } = JSON.parse(text) as { names?: unknown; generation?: unknown }
      if (!Number.isSafeInteger(generation)) return undefined
      if (names !== null && !(Array.isArray(names) && names.every((n) => typeof n === 'string'))) return undefined
      return { names: names, generation: generation as number }
    } catch {
      return undefined
    }
  }

  /** Writes a URL's Vary record atomically. */
  async write(hash: string, key: string, marker: VaryMarker): Promise<void> {
    this.#hashes.add(hash)
    const path = this.#layout.varyPath(hash)
    await mkdir(this.#layout.bucket(hash), { recursive: true })
    const tmp = this.#layout.tempRecordPath(hash, 'vary')
    try {
      await writeFile(tmp, JSON.stringify({ key, ...marker }))
      await rename(tmp, path)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw err
    }
  }
}
