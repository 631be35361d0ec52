// src/profiles/profiles.ts
// Every ecosystem profile, by name.

import { alpine } from './alpine.js'
import { debian } from './debian.js'
import { npm } from './npm.js'
import type { Profile } from './profile.js'
import { pypi } from './pypi.js'
import { staticFiles } from './static.js'

export const PROFILES: ReadonlyMap<string, Profile> = new Map([debian, alpine, npm, pypi, staticFiles].map((p) => [p.name, p]))

export function profileNamed(name: string | undefined): Profile | undefined {
  return name === undefined ? undefined : PROFILES.get(name)
}
