// src/integrity/expected-digest.ts
// What a file is checked against: the digest its ecosystem publishes for it, and the check a fill
// is handed (FillParams.integrity) to hash the body with and to report the result to; and the
// shape of the per-ecosystem finders that read the expected digest from cached metadata.

import type { Route } from '../config-types.js'
import type { StoredMetadata } from './stored-metadata.js'

/** The digests the ecosystems publish that cachemir checks (npm: sha512 or sha1; apt and PyPI: sha256). */
export type DigestAlgorithm = 'sha512' | 'sha256' | 'sha1'

/** Bytes of each algorithm's digest. */
export const DIGEST_BYTES: Readonly<Record<DigestAlgorithm, number>> = { sha512: 64, sha256: 32, sha1: 20 }

/** The digest a file must have. */
export interface ExpectedDigest {
  readonly algorithm: DigestAlgorithm
  readonly expected: Buffer
  /** Where the digest was read (the metadata's cache key, or the path itself for by-hash files), for logs. */
  readonly source: string
}

/** How a check ended: the body matched, did not, or no cached metadata named its digest. */
export type IntegrityResult = 'passed' | 'failed' | 'unchecked'

/** What a fill checks its body against; made by Integrity.checkFor for the files of profile routes. */
export interface IntegrityCheck {
  /** Every algorithm the expected digest may use: the body is hashed with each while it arrives. */
  readonly algorithms: readonly DigestAlgorithm[]
  /** Looks the expected digest up in cached metadata; called once, when the fill starts. Never rejects. */
  readonly lookup: () => Promise<ExpectedDigest | undefined>
  /** Told how the check ended (counted in /_cachemir/health). */
  readonly record: (result: IntegrityResult) => void
}

/** `hex` as a digest of `algorithm`, or undefined when it is not one. */
export function digestFromHex(algorithm: DigestAlgorithm, hex: string, source: string): ExpectedDigest | undefined {
  if (hex.length !== DIGEST_BYTES[algorithm] * 2 || !/^[0-9a-fA-F]+$/.test(hex)) return undefined
  return { algorithm, expected: Buffer.from(hex, 'hex'), source }
}

/** A base64 value as a digest of `algorithm` (Subresource Integrity), or undefined when it is not one. */
export function digestFromBase64(algorithm: DigestAlgorithm, base64: string, source: string): ExpectedDigest | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return undefined
  const expected = Buffer.from(base64, 'base64')
  return expected.length === DIGEST_BYTES[algorithm] ? { algorithm, expected, source } : undefined
}

/** What a digest finder is given: the file's route and path, every route, and the cached metadata. */
export interface FindContext {
  readonly route: Route
  /** The file's path below the route prefix, query included. */
  readonly relativePath: string
  /** Every configured route (PyPI's project pages may live on another route than its files). */
  readonly routes: readonly Route[]
  readonly stored: StoredMetadata
}

/** One ecosystem's digests: which files it checks, which metadata names them, and the lookup. */
export interface DigestFinder {
  /** Every algorithm `find` may answer with. */
  readonly algorithms: readonly DigestAlgorithm[]
  /** Whether the file at `relativePath` is checked at all (a test of the path alone). */
  covers(relativePath: string): boolean
  /** Whether an answer stored for `relativePath` is metadata `find` reads ('index': an apt index). */
  metadataKind(relativePath: string): 'document' | 'index' | undefined
  /** The digest published for the file in cached metadata; undefined when none is cached or names it. */
  find(context: FindContext): Promise<ExpectedDigest | undefined>
}

/** A percent-encoded path or segment decoded, or undefined when it is not valid percent-encoding. */
export function decodedOrUndefined(encoded: string): string | undefined {
  try {
    return decodeURIComponent(encoded)
  } catch {
    return undefined
  }
}
