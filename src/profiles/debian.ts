// src/profiles/debian.ts
// apt repositories (Debian, Ubuntu, and others laid out the same way): the indexes under dists/
// change with every publication and are always revalidated; by-hash/ copies and pool/ files are
// named for their content and never change. apt asks for every index with `Cache-Control:
// max-age=0`, by-hash/ ones included; an immutable rule ignores that, so those stay hits.

import { rule, type Profile } from './profile.js'

export const debian: Profile = {
  name: 'debian',
  summary: 'apt repositories (Debian, Ubuntu, ...): indexes revalidated, pool/ and by-hash/ immutable',
  rules: [
    rule(/(^|\/)dists\/.+\/by-hash\/[^/]+\/[^/]+$/, 'immutable', 'by-hash/ files are named for their digest'),
    rule(/(^|\/)dists\/[^/]+\/(InRelease|Release|Release\.gpg)$/, 'revalidate', 'the signed release files change with every publication'),
    rule(
      /(^|\/)dists\/.+\/(Packages|Sources|Contents-[^/]+|Translation-[^/]+|Components-[^/]+|Index)(\.(gz|xz|bz2|lzma|zst))?$/,
      'revalidate',
      'index files change with every publication',
    ),
    rule(/(^|\/)dists\//, 'revalidate', 'anything else under dists/ belongs to one publication'),
    rule(/(^|\/)pool\//, 'immutable', 'pool/ files never change once published (a new version has a new name)'),
  ],
}
