// test/unit/rewrite-urls.test.ts
// UrlRewriter, the streaming replacement behind the npm and PyPI rewrites: the same output however
// the input is cut into chunks, the longest upstream first where one is a prefix of another.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { UrlRewriter } from '../../src/profiles/rewrite-urls.js'

const REPLACEMENTS = [
  { from: Buffer.from('http://upstream.test/'), to: Buffer.from('http://mirror.test/') },
  { from: Buffer.from('http://upstream.test/npm/'), to: Buffer.from('http://mirror.test/npm-mirror/') },
]

const INPUT = [
  '{"a":"http://upstream.test/x/-/x-1.tgz",',
  '"b":"http://upstream.test/npm/y/-/y-1.tgz",',
  '"c":"http://upstream.test/npm","d":"http://upstream.tes",',
  '"e":"http://upstream.test/http://upstream.test/npm/"}',
].join('')
const EXPECTED = [
  '{"a":"http://mirror.test/x/-/x-1.tgz",',
  '"b":"http://mirror.test/npm-mirror/y/-/y-1.tgz",',
  '"c":"http://mirror.test/npm","d":"http://upstream.tes",',
  '"e":"http://mirror.test/http://mirror.test/npm-mirror/"}',
].join('')

async function rewrite(chunks: readonly Buffer[]): Promise<string> {
  return (await buffer(Readable.from(chunks).pipe(new UrlRewriter(REPLACEMENTS)))).toString()
}

function cut(input: string, sizes: (i: number) => number): Buffer[] {
  const bytes = Buffer.from(input)
  const chunks: Buffer[] = []
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const end = Math.min(bytes.length, at + Math.max(1, sizes(i)))
    chunks.push(bytes.subarray(at, end))
    at = end
  }
  return chunks
}

test('every URL is rewritten whether it arrives whole, byte by byte or cut anywhere', async () => {
  assert.equal(await rewrite([Buffer.from(INPUT)]), EXPECTED)
  assert.equal(await rewrite(cut(INPUT, () => 1)), EXPECTED)
  for (let size = 2; size < 40; size++) assert.equal(await rewrite(cut(INPUT, () => size)), EXPECTED, `chunks of ${size}`)
  // Uneven cuts, deterministic.
  assert.equal(await rewrite(cut(INPUT, (i) => (i * 7919) % 23)), EXPECTED)
})

test('a body without any upstream URL passes unchanged, an empty one too', async () => {
  assert.equal(await rewrite(cut('{"plain":"text, no URL here"}', () => 3)), '{"plain":"text, no URL here"}')
  assert.equal(await rewrite([]), '')
})
