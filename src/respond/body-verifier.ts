// src/respond/body-verifier.ts
// A pass-through stream that checks a cached body against its recorded sha256 and holds back the
// last chunk until the digest matches, so corrupt bytes never reach a client as a complete body.
// On a mismatch it first runs `onMismatch` (dropping the entry), and only then fails: a client that
// retries as soon as its response is cut short must not be served the same damaged copy again.

import { createHash, type Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'

export class BodyVerifier extends Transform {
  readonly #expected: string
  readonly #onMismatch: (() => Promise<void>) | undefined
  readonly #digest: Hash = createHash('sha256')
  #held: Buffer | undefined

  constructor(expectedSha256: string, onMismatch?: () => Promise<void>) {
    super()
    this.#expected = expectedSha256
    this.#onMismatch = onMismatch
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#digest.update(chunk)
    const out = this.#held
    this.#held = chunk
    done(null, out)
  }

  override _flush(done: TransformCallback): void {
    if (this.#digest.digest('hex') !== this.#expected) {
      const err = new Error('cached body failed its sha256 check')
      const dropped = this.#onMismatch?.() ?? Promise.resolve()
      dropped.then(
        () => done(err),
        () => done(err),
      )
    } else done(null, this.#held)
  }
}
