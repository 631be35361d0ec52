// src/profiles/static.ts
// Plain file archives (document collections, ISO images): the upstream's own caching headers, and
// where it gives none, a long freshness for archives and media, which such sites rarely replace.

import { rule, TTL, type Profile } from './profile.js'

const ARCHIVES_AND_MEDIA =
  /\.(iso|img|qcow2|zip|7z|rar|tar|tgz|tbz2|txz|gz|bz2|xz|zst|lz|deb|rpm|apk|whl|jar|epub|pdf|mobi|mp3|mp4|m4a|m4v|mkv|webm|ogg|ogv|flac|wav|avi|mov|png|jpe?g|gif|webp|svg)$/i

export const staticFiles: Profile = {
  name: 'static',
  summary: 'plain file archives: standard HTTP rules, 30 days of freshness for archives and media without their own',
  rules: [rule(ARCHIVES_AND_MEDIA, 'default', 'archives and media rarely change: 30 days when the upstream says nothing', TTL.days(30))],
}
