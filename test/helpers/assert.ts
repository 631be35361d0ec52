// test/helpers/assert.ts
// Assertions on what a test client received.

import assert from 'node:assert/strict'
import type { Fetched } from './client.js'
import { sha256 } from './origin.js'

/**
 * Asserts a complete 200 whose body is exactly `body` (length and SHA-256). Each message starts
 * with `what`; the status message also shows the start of the body that came instead.
 */
export function assertBody(r: Fetched, body: Buffer | string, what: string): void {
  const expected = typeof body === 'string' ? Buffer.from(body) : body
  assert.equal(r.status, 200, `${what}: status (${r.body.subarray(0, 200).toString()})`)
  assert.equal(r.complete, true, `${what}: complete (${String(r.error)})`)
  assert.equal(r.body.length, expected.length, `${what}: length`)
  assert.equal(sha256(r.body), sha256(expected), `${what}: digest`)
}
