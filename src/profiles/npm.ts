// src/profiles/npm.ts
// npm registries: package documents (full, and the abbreviated install form, cached apart) are
// short-lived; tarballs under /-/ never change; everything else (login, publish, audit, search,
// dist-tags) is passed through uncached. Documents carry absolute tarball URLs on the upstream
// host, rewritten at serve time to point at the mirror.

import { acceptedTypes, rule, TTL, type Profile } from './profile.js'

/** `name` or `@scope/name` (also `@scope%2fname`), below the route prefix, with no further path. */
const DOCUMENT = /^(@[^/%]+(\/|%2[fF]))?[^/@%?][^/?]*$/
const TARBALL = /^(@[^/%]+(\/|%2[fF]))?[^/?]+\/-\/[^/?]+\.tgz$/
const ABBREVIATED = 'application/vnd.npm.install-v1+json'

export const npm: Profile = {
  name: 'npm',
  summary: 'npm registries: documents 5 minutes then revalidated (full and abbreviated apart), tarballs immutable, the rest uncached',
  rules: [
    rule(TARBALL, 'immutable', 'a published tarball never changes (npm refuses to republish a version)'),
    rule(DOCUMENT, 'default', 'package documents change when a version is published: 5 minutes, then revalidated', TTL.minutes(5)),
    rule(/./, 'no-store', 'login, publish, audit, search and dist-tags are passed through uncached'),
  ],
  variants: ['npm-abbreviated', 'npm-full'],
  variantOf(relativePath, headers) {
    if (!DOCUMENT.test(relativePath)) return undefined
    return acceptedTypes(headers).includes(ABBREVIATED) ? 'npm-abbreviated' : 'npm-full'
  },
  rewrites: (relativePath) => DOCUMENT.test(relativePath),
}
