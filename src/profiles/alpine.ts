// src/profiles/alpine.ts
// Alpine's apk repositories: one index per repository and architecture, and versioned packages.

import { rule, type Profile } from './profile.js'

export const alpine: Profile = {
  name: 'alpine',
  summary: 'Alpine apk repositories: APKINDEX revalidated, .apk immutable',
  rules: [
    rule(/(^|\/)APKINDEX\.tar\.gz$/, 'revalidate', 'the index changes with every publication'),
    rule(/\.apk$/, 'immutable', 'a package file never changes (a new version has a new name)'),
  ],
}
