// test/unit/disk-index.test.ts
// The disk index keeps sha256 keys packed; callers still see the hex hashes they passed in.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { bodyVersion, bytesOfVersion } from '../../src/cache/disk-layout.js'
import { chargedBytes, DiskIndex } from '../../src/cache/disk-index.js'

const hex = (s: string): string => createHash('sha256').update(s).digest('hex')
const GiB = 1024 ** 3

test('a body version is `<id>.<bytes>` and gives its bytes back', () => {
  assert.equal(bodyVersion('e3b570de48a5', 1500), 'e3b570de48a5.1500')
  assert.equal(bytesOfVersion(bodyVersion('e3b570de48a5', 1500)), 1500)
  assert.equal(bytesOfVersion(bodyVersion('0', 0)), 0)
})

test('sha256 hashes go in and come back out unchanged, most recently used first', () => {
  const index = new DiskIndex({ maxBytes: GiB, onEvict: () => {} })
  const hashes = ['a', 'b', 'c'].map(hex)
  for (const [i, h] of hashes.entries()) assert.equal(index.set(h, bodyVersion(`id${i}`, 10 * i)), true)
  assert.equal(index.get(hashes[0] as string), 'id0.0')
  assert.equal(index.has(hashes[1] as string), true)
  assert.equal(index.has(hex('d')), false)
  assert.deepEqual([...index.hashes()], [hashes[0], hashes[2], hashes[1]])
  assert.equal(index.entries, 3)
  assert.equal(index.bytes, chargedBytes(0) + chargedBytes(10) + chargedBytes(20))
  index.delete(hashes[2] as string)
  assert.equal(index.get(hashes[2] as string), undefined)
  assert.equal(index.entries, 2)
})

test('keys that are not lowercase sha256 hex are kept apart from packed ones', () => {
  const index = new DiskIndex({ maxBytes: GiB, onEvict: () => {} })
  const lower = hex('x')
  const odd = [lower.toUpperCase(), lower.slice(0, 32), `${lower.slice(0, 63)}g`, '\u0100abc', '', 'é'.repeat(64)]
  index.set(lower, 'lower.1')
  for (const [i, key] of odd.entries()) index.set(key, `odd${i}.${i}`)
  assert.equal(index.entries, 1 + odd.length)
  assert.equal(index.get(lower), 'lower.1')
  for (const [i, key] of odd.entries()) assert.equal(index.get(key), `odd${i}.${i}`, JSON.stringify(key))
  assert.deepEqual(new Set(index.hashes()), new Set([lower, ...odd]))
})

test('eviction reports the hex hash and version of the least recently used entry', () => {
  const evicted: [string, string][] = []
  // Room for two entries of up to 4 KiB (each charged 8 KiB).
  const index = new DiskIndex({ maxBytes: 16 * 1024, onEvict: (hash, version) => evicted.push([hash, version]) })
  const [a, b, c] = ['a', 'b', 'c'].map(hex) as [string, string, string]
  index.set(a, 'aa.100')
  index.set(b, 'bb.100')
  index.get(a)
  index.set(c, 'cc.100')
  assert.deepEqual(evicted, [[b, 'bb.100']])
  // Replacing or deleting is not an eviction.
  index.set(a, 'aa2.200')
  index.delete(c)
  assert.deepEqual(evicted, [[b, 'bb.100']])
  assert.equal(index.set(hex('big'), bodyVersion('big', 64 * 1024)), false)
})

test('a scanned entry never replaces what the running process already recorded', () => {
  const index = new DiskIndex({ maxBytes: GiB, onEvict: () => {} })
  const h = hex('k')
  index.set(h, 'new.2')
  index.addScanned(h, 'old.1')
  index.addScanned(hex('other'), 'other.3')
  assert.equal(index.get(h), 'new.2')
  assert.equal(index.get(hex('other')), 'other.3')
})
