// test/unit/pypi-profile.test.ts
// The pypi profile as pure decisions: which rule each kind of path gets (on both route layouts),
// which form an Accept header selects (PEP 691 q-values and aliases), and the serve-time rewrite
// of absolute URLs and absolute-path references, fed one byte at a time.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { text } from 'node:stream/consumers'
import type { Route } from '../../src/config.js'
import { matchRule } from '../../src/policy/freshness.js'
import { pypi } from '../../src/profiles/pypi.js'
import { urlRewriteFor } from '../../src/profiles/rewrite-urls.js'

const route = (prefix: string, upstream: string): Route => ({
  prefix,
  upstreams: [new URL(upstream)],
  rules: pypi.rules,
  followRedirects: false,
  profile: 'pypi',
  upstreamAuth: undefined,
  shareAuthenticated: false,
  timeouts: { connectMs: 1000, headersMs: 1000, bodyIdleMs: 1000 },
})

test('rules: pages revalidated on either layout, distribution files immutable, the JSON API revalidated; pages and the JSON API rewritten', () => {
  const cases: [path: string, mode: string | undefined][] = [
    ['simple/', 'revalidate'], // a route for the index's root
    ['simple/requests/', 'revalidate'],
    ['', 'revalidate'], // a route for the simple directory itself
    ['requests/', 'revalidate'],
    ['requests/?format=json', 'revalidate'],
    ['packages/ab/cd/requests-2.0-py3-none-any.whl', 'immutable'],
    ['packages/ab/cd/requests-2.0-py3-none-any.whl.metadata', 'immutable'],
    ['packages/ab/cd/requests-2.0.tar.gz', 'immutable'],
    ['pypi/requests/json', 'revalidate'],
    ['pypi/requests/2.0/json', 'revalidate'],
    ['packages/ab/cd/notes.txt', undefined],
  ]
  for (const [path, mode] of cases) assert.equal(matchRule(pypi.rules, path)?.mode, mode, path)
  // Rewritten: the pages, and the JSON API, whose `urls` name the files host as well.
  for (const path of ['simple/requests/', 'requests/', 'pypi/requests/json']) assert.equal(pypi.rewrites?.(path, []), true, path)
  assert.equal(pypi.rewrites?.('packages/ab/cd/requests-2.0.tar.gz', []), false)
})

test('variantOf: the form with the highest q; equal q, the one listed first; nothing acceptable is HTML', () => {
  const cases: [accept: string | undefined, variant: string][] = [
    ['application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01', 'pypi-json'],
    ['application/vnd.pypi.simple.latest+json', 'pypi-json'],
    ['application/vnd.pypi.simple.v1+json;q=0, text/html', 'pypi-html'],
    ['application/vnd.pypi.simple.v1+json;q=0', 'pypi-html'],
    ['application/vnd.pypi.simple.v1+json;q=0.2, application/vnd.pypi.simple.v1+html', 'pypi-html'],
    ['text/html;q=0.5, application/vnd.pypi.simple.v1+json', 'pypi-json'],
    ['text/html, application/vnd.pypi.simple.v1+json', 'pypi-html'],
    ['application/vnd.pypi.simple.v1+json, text/html', 'pypi-json'],
    ['text/html,application/xhtml+xml,*/*;q=0.8', 'pypi-html'],
    ['*/*', 'pypi-html'],
    [undefined, 'pypi-html'],
  ]
  for (const [accept, variant] of cases) {
    assert.equal(pypi.variantOf?.('simple/requests/', accept === undefined ? {} : { accept }), variant, String(accept))
  }
  assert.equal(pypi.variantOf?.('packages/ab/cd/requests-2.0.tar.gz', { accept: 'application/vnd.pypi.simple.v1+json' }), undefined)
})

test('the rewrite maps upstream URLs and absolute-path references, and leaves other hosts alone, across any chunking', async () => {
  const index = route('/pypi/', 'https://pypi.example.org/')
  const files = route('/files/', 'https://files.example.org/')
  const simpleDir = route('/simple/', 'https://index.example.org/simple/')
  const routes = [index, files, simpleDir]
  const rewrite = async (r: Route, body: string): Promise<string> => {
    const transform = urlRewriteFor(r, routes)
    assert.ok(transform !== undefined)
    return text(Readable.from([...Buffer.from(body)].map((b) => Buffer.from([b]))).pipe(transform.create({ base: 'http://mirror:8080' })))
  }

  assert.equal(
    await rewrite(
      index,
      '<a href="https://files.example.org/packages/a.whl#sha256=00">a</a>' +
        '<a href="/simple/b/">b</a><a href=\'/simple/c/\'>c</a>' +
        '<a href="//cdn.example.org/d.whl">d</a><a href="e.whl">e</a>',
    ),
    '<a href="http://mirror:8080/files/packages/a.whl#sha256=00">a</a>' +
      '<a href="http://mirror:8080/pypi/simple/b/">b</a><a href=\'http://mirror:8080/pypi/simple/c/\'>c</a>' +
      '<a href="//cdn.example.org/d.whl">d</a><a href="e.whl">e</a>',
  )
  assert.equal(
    await rewrite(index, '{"files":[{"url":"/packages/a.whl"},{"url": "/packages/b.whl"},{"url":"https://files.example.org/c.whl"}]}'),
    '{"files":[{"url":"http://mirror:8080/pypi/packages/a.whl"},{"url": "http://mirror:8080/pypi/packages/b.whl"},{"url":"http://mirror:8080/files/c.whl"}]}',
  )
  // Below the route's upstream path: the mirror; elsewhere on that host: the upstream's absolute URL.
  assert.equal(
    await rewrite(simpleDir, '<a href="/simple/b/">b</a><a href="/packages/c.whl">c</a>'),
    '<a href="http://mirror:8080/simple/b/">b</a><a href="https://index.example.org/packages/c.whl">c</a>',
  )
})
