// src/profiles/npm.ts
// npm registries: package documents (full, and the abbreviated install form, cached apart) are
// short-lived; tarballs under /-/ never change; everything else (login, publish, audit, search,
// dist-tags, single versions) is passed through uncached. Documents, and single-version documents,
// carry absolute tarball URLs on the upstream host, rewritten at serve time to point at the mirror.

import { acceptedTypes, rule, TTL, type Profile } from './profile.js'

/** `name` or `@scope/name` (also `@scope%2fname`), below the route prefix, with no further path. */
const DOCUMENT = /^(@[^/%]+(\/|%2[fF]))?[^/@%?][^/?]*$/
/** One version's document, `name/1.0.0` or `name/latest` (passed through, but it names a tarball too). */
const VERSION_DOCUMENT = /^(?!-\/)(@[^/%]+(\/|%2[fF]))?[^/@%?][^/?]*\/[^/?-][^/?]*$/
const TARBALL = /^(@[^/%]+(\/|%2[fF]))?[^/?]+\/-\/[^/?]+\.tgz$/
const ABBREVIATED = 'application/vnd.npm.install-v1+json'
/** The `@scope%2f` that starts a scoped document request. */
const ENCODED_SCOPE = /^(@[^/%]+)%2[fF]/

export const npm: Profile = {
  name: 'npm',
  summary: 'npm registries: documents 5 minutes then revalidated (full and abbreviated apart), tarballs immutable, the rest uncached',
  rules: [
    rule(TARBALL, 'immutable', 'a published tarball never changes (npm refuses to republish a version)'),
    rule(DOCUMENT, 'default', 'package documents change when a version is published: 5 minutes, then revalidated', TTL.minutes(5)),
    rule(/./, 'no-store', 'login, publish, audit, search, dist-tags and single versions are passed through uncached'),
  ],
  variants: ['npm-abbreviated', 'npm-full'],
  variantOf(relativePath, headers) {
    if (!DOCUMENT.test(relativePath)) return undefined
    return acceptedTypes(headers).includes(ABBREVIATED) ? 'npm-abbreviated' : 'npm-full'
  },
  // npm escapes a scoped name's '/' in document requests; the scope and name are still checked.
  pathForSafetyCheck: (relativePath) => relativePath.replace(ENCODED_SCOPE, '$1/'),
  rewrites: (relativePath) => DOCUMENT.test(relativePath) || VERSION_DOCUMENT.test(relativePath),
}
