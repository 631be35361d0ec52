// src/profiles/pypi.ts
// Python package indexes (PEP 503 simple pages and PEP 691 JSON, negotiated by Accept and cached
// apart; revalidated) and their distribution files (immutable). The pages link to a separate files
// host, which the config gives a route of its own; the links are rewritten to point at the mirror.

import { acceptedTypes, rule, type Profile } from './profile.js'

const SIMPLE = /^simple(\/|$)/
const JSON_TYPE = 'application/vnd.pypi.simple.v1+json'

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
    rule(/^pypi\/.+\/json$/, 'revalidate', 'the JSON API describes the current releases'),
  ],
  variants: ['pypi-json', 'pypi-html'],
  variantOf(relativePath, headers) {
    if (!SIMPLE.test(relativePath)) return undefined
    // PEP 691: the JSON form when the client prefers it; HTML (v1 or text/html) otherwise.
    const types = acceptedTypes(headers)
    const json = types.indexOf(JSON_TYPE)
    const html = types.findIndex((t) => t === 'application/vnd.pypi.simple.v1+html' || t === 'text/html')
    return json >= 0 && (html < 0 || json < html) ? 'pypi-json' : 'pypi-html'
  },
  rewrites: (relativePath) => SIMPLE.test(relativePath),
}
