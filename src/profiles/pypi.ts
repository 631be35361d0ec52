// src/profiles/pypi.ts
// Python package indexes (PEP 503 simple pages and PEP 691 JSON, negotiated by Accept and cached
// apart; revalidated) and their distribution files (immutable). The pages link to a separate files
// host, which the config gives a route of its own; the links are rewritten to point at the mirror.

import type { IncomingHttpHeaders } from 'node:http'
import { rule, type Profile } from './profile.js'

/**
 * A simple page, wherever the route puts the index: `simple/…` on a route for the index's root,
 * and the route's root and `<project>/` on a route whose upstream is the simple directory itself
 * (`https://pypi.example.org/simple/`). PEP 503 pages end in `/`; distribution files never do.
 */
const SIMPLE = /^(simple(\/|$)|([^/?]+\/)?(\?|$))/
/** The JSON API (`pypi/<project>/json`, `pypi/<project>/<version>/json`): its `urls` name the files host too. */
const JSON_API = /^pypi\/[^?]+\/json(\?|$)/

/** PEP 691 media types of each form; `latest` is an alias of the newest version. */
const JSON_TYPES = new Set(['application/vnd.pypi.simple.v1+json', 'application/vnd.pypi.simple.latest+json'])
/** The HTML form answers these, and the wildcards: an index answers a browser's wildcard with HTML. */
const HTML_TYPES = new Set(['application/vnd.pypi.simple.v1+html', 'application/vnd.pypi.simple.latest+html', 'text/html', 'text/*', '*/*'])

export const pypi: Profile = {
  name: 'pypi',
  summary: 'Python package indexes: simple pages revalidated (HTML and JSON apart), distribution files immutable',
  rules: [
    rule(SIMPLE, 'revalidate', 'a project page changes with every release'),
    rule(
      /\.(whl|tar\.gz|tar\.bz2|tgz|zip|egg)(\.metadata)?$/,
      'immutable',
      'a distribution file never changes (PyPI refuses to reuse a file name)',
    ),
    rule(JSON_API, 'revalidate', 'the JSON API describes the current releases'),
  ],
  variants: ['pypi-json', 'pypi-html'],
  variantOf(relativePath, headers) {
    if (!SIMPLE.test(relativePath)) return undefined
    return prefersJson(headers) ? 'pypi-json' : 'pypi-html'
  },
  rewrites: (relativePath) => SIMPLE.test(relativePath) || JSON_API.test(relativePath),
  // PEP 503 lets hrefs, and PEP 691 lets `url`s, be relative to the page; PyPI's root page links `/simple/<project>/`.
  pathReferenceOpeners: ['href="', "href='", '"url":"', '"url": "'],
}

/**
 * PEP 691 negotiation as an index does it: the form with the highest q; between equal q, the one
 * the client lists first; nothing acceptable, or no Accept at all, is HTML. The key must name the
 * form the upstream will send, since the upstream need not say `Vary: Accept`.
 */
function prefersJson(headers: IncomingHttpHeaders): boolean {
  let json = { q: 0, at: Infinity }
  let html = { q: 0, at: Infinity }
  const members = (headers.accept ?? '').split(',')
  for (let at = 0; at < members.length; at++) {
    const [type = '', ...params] = (members[at] as string).split(';').map((s) => s.trim().toLowerCase())
    const q = weight(params)
    if (JSON_TYPES.has(type) && q > json.q) json = { q, at }
    else if (HTML_TYPES.has(type) && q > html.q) html = { q, at }
  }
  return json.q > 0 && (json.q > html.q || (json.q === html.q && json.at < html.at))
}

/** RFC 9110 §12.4.2: `q=` from 0 to 1, 1 when absent; a malformed one counts as absent. */
function weight(params: readonly string[]): number {
  const q = params.find((p) => p.startsWith('q='))
  if (q === undefined) return 1
  const value = q.length > 2 ? Number(q.slice(2)) : NaN
  return Number.isFinite(value) && value >= 0 && value <= 1 ? value : 1
}
