// bench/lib/npm-packages.ts
// The generated package set of the `packages` scenario: 100 small packages in four levels
// (the 30 direct dependencies pull in the rest), their tarballs (real npm tarballs: a gzipped
// ustar archive of package/package.json, index.js and README.md, with sha512 integrity and sha1
// shasum), their full and abbreviated documents, and one very large document (many versions)
// for the memory measurement. Deterministic: the same set on every run.
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'

/** Packages per level: level 0 holds the project's direct dependencies, level 3 the leaves. */
const LEVELS = [30, 35, 25, 10] as const
export const BIG_NAME = 'cm-huge'
/** How many `cm-probe-NNN` packages the registry serves (see probePackages). */
export const PROBE_PACKAGES = 80
/**
 * A scoped package outside the install set: npm asks for its document as `/@cm-bench%2fcm-scoped`.
 * Probed on its own, because an install whose tree holds a package the mirror refuses fails whole.
 */
export const SCOPED_NAME = '@cm-bench/cm-scoped'

export interface PackageVersion {
  readonly version: string
  readonly dependencies: Readonly<Record<string, string>>
  readonly tarball: Buffer
  readonly integrity: string
  readonly shasum: string
  readonly unpackedSize: number
}

export interface GeneratedPackage {
  readonly name: string
  readonly level: number
  readonly versions: readonly PackageVersion[]
}

/** xorshift32: the same choices on every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 0x100000000
  }
}

const WORDS =
  'alpha bravo cache delta echo fetch graph hoist index joint kappa layer merge node offset parse queue range shard token union vector write yield zone'.split(
    ' ',
  )

/** The versions a package publishes: 1.x always; every third package also has a 2.0.0. */
function versionList(i: number): string[] {
  const list = ['1.0.0', '1.0.1', '1.1.0']
  if (i % 2 === 0) list.push('1.2.0')
  if (i % 3 === 0) list.push('2.0.0')
  return list
}

/** The whole set; `names` in order of index, direct dependencies first. */
export function generatePackages(): GeneratedPackage[] {
  const rand = prng(20240611)
  const names: string[] = []
  const levelOf: number[] = []
  LEVELS.forEach((count, level) => {
    for (let k = 0; k < count; k++) {
      const i = names.length
      names.push(`cm-${WORDS[i % WORDS.length] as string}-${String(i).padStart(3, '0')}`)
      levelOf.push(level)
    }
  })
  const start = (level: number): number => LEVELS.slice(0, level).reduce((a, b) => a + b, 0)
  const deps: Set<number>[] = names.map(() => new Set<number>())
  for (let level = 0; level + 1 < LEVELS.length; level++) {
    const from = start(level)
    const to = start(level + 1)
    const size = LEVELS[level] as number
    const nextSize = LEVELS[level + 1] as number
    // Every package of the next level has at least one dependent, so the direct set pulls in all.
    for (let j = 0; j < nextSize; j++) deps[from + (j % size)]?.add(to + j)
    // And one or two more, some of them a level further down.
    for (let k = 0; k < size; k++) {
      const extra = 1 + Math.floor(rand() * 2)
      for (let e = 0; e < extra; e++) {
        const deeper = level + 2 < LEVELS.length && rand() < 0.25
        const target = deeper ? start(level + 2) + Math.floor(rand() * (LEVELS[level + 2] as number)) : to + Math.floor(rand() * nextSize)
        deps[from + k]?.add(target)
      }
    }
  }
  return names.map((name, i) => {
    const ranges: Record<string, string> = {}
    for (const target of deps[i] ?? []) {
      // A dependency on a package with a 2.x asks for it one time in four: npm then nests a copy.
      const hasMajor2 = target % 3 === 0
      ranges[names[target] as string] = hasMajor2 && (i + target) % 4 === 0 ? '^2.0.0' : '^1.0.0'
    }
    const versions = versionList(i).map((version) => makeVersion(name, version, ranges, i))
    return { name, level: levelOf[i] as number, versions }
  })
}

/**
 * Packages in no project's tree, for requests that must not touch the install's URLs: the scoped
 * probe, and `count` unscoped ones (`cm-probe-000`, …) that warm a fresh mirror's code paths and
 * time single misses. One version each, no dependencies.
 */
export function probePackages(count: number): GeneratedPackage[] {
  const names = [SCOPED_NAME, ...Array.from({ length: count }, (_, i) => `cm-probe-${String(i).padStart(3, '0')}`)]
  return names.map((name, i) => ({ name, level: -1, versions: [makeVersion(name, '1.0.0', {}, i)] }))
}

/** The project's package.json dependencies: every level-0 package at ^1.0.0. */
export function directDependencies(packages: readonly GeneratedPackage[]): Record<string, string> {
  return Object.fromEntries(packages.filter((p) => p.level === 0).map((p) => [p.name, '^1.0.0']))
}

function makeVersion(name: string, version: string, dependencies: Record<string, string>, i: number): PackageVersion {
  const manifest = {
    name,
    version,
    description: `generated package ${i} for the cachemir bench`,
    main: 'index.js',
    license: 'MIT',
    dependencies,
  }
  const files: [string, string][] = [
    ['package/package.json', `${JSON.stringify(manifest, null, 2)}\n`],
    [
      'package/index.js',
      `'use strict'\nmodule.exports = ${JSON.stringify(`${name}@${version}`)}\n${'// filler\n'.repeat(50 + (i % 7) * 40)}`,
    ],
    ['package/README.md', `# ${name}\n\n${WORDS.join(' ')}\n`.repeat(4)],
  ]
  const tarball = gzipSync(tar(files), { level: 9 })
  return {
    version,
    dependencies,
    tarball,
    integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
    shasum: createHash('sha1').update(tarball).digest('hex'),
    unpackedSize: files.reduce((n, [, body]) => n + Buffer.byteLength(body), 0),
  }
}

/** A ustar archive of regular files (mode 644, fixed mtime), ended by two zero blocks. */
export function tar(files: readonly (readonly [string, string])[]): Buffer {
  const blocks: Buffer[] = []
  for (const [path, text] of files) {
    const body = Buffer.from(text)
    const h = Buffer.alloc(512)
    h.write(path, 0, 100, 'utf8')
    h.write('0000644\0', 100)
    h.write('0000000\0', 108)
    h.write('0000000\0', 116)
    h.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124)
    h.write(`${(1700000000).toString(8).padStart(11, '0')}\0`, 136)
    h.write('        ', 148) // the checksum counts its own field as spaces
    h.write('0', 156)
    h.write('ustar\0' + '00', 257)
    let sum = 0
    for (const b of h) sum += b
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
    blocks.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

/** Tarball path below the registry root: `name/-/base-version.tgz` (scoped: `@s/name/-/name-v.tgz`). */
export function tarballPath(name: string, version: string): string {
  return `${name}/-/${name.split('/').at(-1) as string}-${version}.tgz`
}

/** The document's path as npm asks for it: `name`, or `@scope%2fname`. */
export function documentPath(name: string): string {
  return name.replace('/', '%2f')
}

const TIME = '2024-06-11T00:00:00.000Z'

/** Full and abbreviated documents of one package, tarball URLs absolute on `base` (ends with `/`). */
export function packageDocuments(p: GeneratedPackage, base: string): { full: string; abbreviated: string } {
  const latest = p.versions.filter((v) => v.version.startsWith('1.')).at(-1)?.version ?? '1.0.0'
  const dist = (v: PackageVersion): Record<string, unknown> => ({
    integrity: v.integrity,
    shasum: v.shasum,
    tarball: base + tarballPath(p.name, v.version),
    fileCount: 3,
    unpackedSize: v.unpackedSize,
  })
  const abbreviated = {
    name: p.name,
    modified: TIME,
    'dist-tags': { latest },
    versions: Object.fromEntries(
      p.versions.map((v) => [v.version, { name: p.name, version: v.version, dependencies: v.dependencies, dist: dist(v) }]),
    ),
  }
  const full = {
    _id: p.name,
    name: p.name,
    description: `generated package for the cachemir bench`,
    'dist-tags': { latest },
    versions: Object.fromEntries(
      p.versions.map((v) => [
        v.version,
        {
          name: p.name,
          version: v.version,
          description: `generated package for the cachemir bench`,
          main: 'index.js',
          license: 'MIT',
          dependencies: v.dependencies,
          _id: `${p.name}@${v.version}`,
          _npmUser: { name: 'bench', email: 'bench@example.invalid' },
          maintainers: [{ name: 'bench', email: 'bench@example.invalid' }],
          dist: dist(v),
        },
      ]),
    ),
    time: { created: TIME, modified: TIME, ...Object.fromEntries(p.versions.map((v) => [v.version, TIME])) },
    maintainers: [{ name: 'bench', email: 'bench@example.invalid' }],
    license: 'MIT',
    readme: `# ${p.name}\n`,
    readmeFilename: 'README.md',
  }
  return { full: JSON.stringify(full), abbreviated: JSON.stringify(abbreviated) }
}

/**
 * A full document of at least `bytes` bytes: one package with as many versions as that takes
 * (about 2 KB each, every one with an absolute tarball URL on `base`), like the documents of
 * packages with a long release history. Its tarballs do not exist.
 */
export function bigDocument(base: string, bytes: number): { full: string; versions: number } {
  const rand = prng(7)
  const word = (): string => WORDS[Math.floor(rand() * WORDS.length)] as string
  const parts: string[] = []
  let size = 0
  let n = 0
  const times: string[] = []
  while (size < bytes) {
    const version = `${Math.floor(n / 1000)}.${Math.floor(n / 10) % 100}.${n % 10}`
    const hex = createHash('sha1').update(`${BIG_NAME}@${version}`).digest('hex')
    const entry = {
      name: BIG_NAME,
      version,
      description: Array.from({ length: 24 }, word).join(' '),
      keywords: Array.from({ length: 8 }, word),
      main: 'index.js',
      license: 'MIT',
      scripts: { test: 'node test.js', build: `tsc -p ${word()}` },
      repository: { type: 'git', url: `git+https://git.example.invalid/${BIG_NAME}.git` },
      dependencies: Object.fromEntries(Array.from({ length: 5 }, () => [`cm-${word()}-${word()}`, `^${Math.floor(rand() * 9)}.0.0`])),
      devDependencies: Object.fromEntries(
        Array.from({ length: 8 }, () => [`cm-dev-${word()}-${word()}`, `^${Math.floor(rand() * 9)}.0.0`]),
      ),
      _id: `${BIG_NAME}@${version}`,
      _npmUser: { name: 'bench', email: 'bench@example.invalid' },
      maintainers: [{ name: 'bench', email: 'bench@example.invalid' }],
      dist: {
        integrity: `sha512-${createHash('sha512').update(hex).digest('base64')}`,
        shasum: hex,
        tarball: base + tarballPath(BIG_NAME, version),
        fileCount: 3 + Math.floor(rand() * 40),
        unpackedSize: Math.floor(rand() * 1e6),
        signatures: [{ keyid: 'SHA256:bench', sig: createHash('sha512').update(version).digest('base64') }],
      },
    }
    const text = `${JSON.stringify(version)}:${JSON.stringify(entry)}`
    parts.push(text)
    times.push(`${JSON.stringify(version)}:${JSON.stringify(TIME)}`)
    size += text.length + 30
    n++
  }
  const latest = JSON.stringify(
    parts.length > 0 ? `${Math.floor((n - 1) / 1000)}.${Math.floor((n - 1) / 10) % 100}.${(n - 1) % 10}` : '0.0.0',
  )
  const full = `{"_id":"${BIG_NAME}","name":"${BIG_NAME}","dist-tags":{"latest":${latest}},"versions":{${parts.join(',')}},"time":{${times.join(',')}},"readme":"# ${BIG_NAME}"}`
  return { full, versions: n }
}
