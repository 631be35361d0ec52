// src/upstream/early-temp.ts
// A temp body file opened while the upstream is still answering a miss, so the first byte is not
// held up by the file system once the answer is in.

import { unlink } from 'node:fs/promises'
import type { TempBody } from '../cache/disk-store.js'
import type { TieredStore } from '../cache/tiered-store.js'

export class EarlyTemp {
  /** The store key the file was opened for: of no use for another (a variant's). */
  readonly key: string
  /** Never rejects: an error opening the file becomes its value. */
  readonly #made: Promise<TempBody | Error>

  constructor(store: TieredStore, key: string) {
    this.key = key
    this.#made = store.createTemp(key).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
  }

  /** The opened file; rejects with the error when it could not be made. */
  async take(): Promise<TempBody> {
    const made = await this.#made
    if (made instanceof Error) throw made
    return made
  }

  /** Closes and removes the file, not to be used; resolves (never rejects) once it is gone. */
  discard(): Promise<void> {
    return this.#made.then(async (temp) => {
      if (temp instanceof Error) return
      await temp.fh.close().catch(() => {})
      await unlink(temp.path).catch(() => {})
    })
  }
}
