// test/helpers/apt-repo.ts
// A small apt repository built with the real dpkg-deb in a temp dir, new versions published into
// it, and an origin handler serving it the way an upstream behind a corporate proxy often does:
// no ETag, no Last-Modified, no Cache-Control.

import { execFile, execFileSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, normalize, sep } from 'node:path'
import type { TestContext } from 'node:test'
import { promisify } from 'node:util'
import { gzipSync } from 'node:zlib'
import { errorCode } from '../../src/errors.js'
import { sendBody, sha256, type Handler } from './origin.js'
import { makeTempDir } from './temp-dir.js'

const run = promisify(execFile)

/** The one suite and component of the repository. */
export const SUITE = 'stable'
export const COMPONENT = 'main'

export interface DebPackage {
  readonly name: string
  readonly version: string
  /** Path below the repository root: `pool/main/h/hello/hello_1.0_amd64.deb`. */
  readonly filename: string
  readonly size: number
  readonly sha256: string
}

/** Paths below the repository root of what an `apt-get update` reads, as last published. */
export interface AptIndexPaths {
  readonly release: string
  readonly inRelease: string
  readonly packages: string
  readonly packagesGz: string
  /** `dists/stable/main/binary-ARCH/by-hash/SHA256/<hex>` of Packages.gz, which apt fetches. */
  readonly packagesGzByHash: string
  readonly packagesByHash: string
}

export interface AptRepo {
  /** The repository root (holds dists/ and pool/). */
  readonly dir: string
  /** The architecture of the binary packages: what `dpkg --print-architecture` says. */
  readonly arch: string
  /** Every version published so far, oldest first; pool/ keeps them all, Packages lists the newest of each name. */
  readonly published: readonly DebPackage[]
  readonly indexes: AptIndexPaths
  /** Builds NAME_VERSION_ARCH.deb into pool/ and regenerates Packages, Packages.gz, Release and the by-hash copies. */
  publish(name: string, version: string): Promise<DebPackage>
}

/** Why the real Debian tools cannot build a repository here, or undefined when they can. */
export function missingDebTools(): string | undefined {
  for (const tool of ['dpkg', 'dpkg-deb']) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore', timeout: 10_000 })
    } catch (err) {
      return `${tool} is not available (${errorCode(err) ?? String(err)})`
    }
  }
  return undefined
}

/** A repository in a temp dir (removed by t.after) holding `packages`, each [name, version]. */
export async function makeAptRepo(t: TestContext, packages: readonly (readonly [string, string])[]): Promise<AptRepo> {
  const dir = await makeTempDir(t, 'cachemir-apt-repo-')
  const build = await makeTempDir(t, 'cachemir-apt-build-')
  const arch = (await run('dpkg', ['--print-architecture'], { timeout: 10_000 })).stdout.trim()
  const published: DebPackage[] = []
  const binaryDir = `dists/${SUITE}/${COMPONENT}/binary-${arch}`
  let indexes: AptIndexPaths | undefined

  const regenerate = async (): Promise<AptIndexPaths> => {
    // Packages lists the newest version of each name, as a suite does.
    const newest = new Map<string, DebPackage>()
    for (const deb of published) newest.set(deb.name, deb)
    const stanzas = [...newest.values()].map((deb) =>
      [
        `Package: ${deb.name}`,
        `Version: ${deb.version}`,
        `Architecture: ${arch}`,
        'Maintainer: cachemir tests <tests@example.org>',
        'Installed-Size: 1',
        `Filename: ${deb.filename}`,
        `Size: ${deb.size}`,
        `SHA256: ${deb.sha256}`,
        `Description: ${deb.name}, a tiny package for the apt tests`,
        '',
      ].join('\n'),
    )
    const packages = Buffer.from(stanzas.join('\n'))
    const packagesGz = gzipSync(packages)
    await mkdir(join(dir, binaryDir, 'by-hash', 'SHA256'), { recursive: true })
    const files = [
      { name: 'Packages', body: packages },
      { name: 'Packages.gz', body: packagesGz },
    ]
    for (const file of files) {
      await writeFile(join(dir, binaryDir, file.name), file.body)
      // Old by-hash copies stay, as on a real archive, for clients holding the previous Release.
      await writeFile(join(dir, binaryDir, 'by-hash', 'SHA256', sha256(file.body)), file.body)
    }
    const release = [
      'Origin: cachemir-tests',
      'Label: cachemir-tests',
      `Suite: ${SUITE}`,
      `Codename: ${SUITE}`,
      `Date: ${new Date().toUTCString().replace('GMT', 'UTC')}`,
      `Architectures: ${arch}`,
      `Components: ${COMPONENT}`,
      'Description: a test repository',
      'Acquire-By-Hash: yes',
      'SHA256:',
      ...files.map((f) => ` ${sha256(f.body)} ${String(f.body.length).padStart(8)} ${COMPONENT}/binary-${arch}/${f.name}`),
      '',
    ].join('\n')
    // Unsigned: no InRelease, no Release.gpg; clients say [trusted=yes].
    await writeFile(join(dir, 'dists', SUITE, 'Release'), release)
    return {
      release: `dists/${SUITE}/Release`,
      inRelease: `dists/${SUITE}/InRelease`,
      packages: `${binaryDir}/Packages`,
      packagesGz: `${binaryDir}/Packages.gz`,
      packagesByHash: `${binaryDir}/by-hash/SHA256/${sha256(packages)}`,
      packagesGzByHash: `${binaryDir}/by-hash/SHA256/${sha256(packagesGz)}`,
    }
  }

  const publish = async (name: string, version: string): Promise<DebPackage> => {
    const root = join(build, `${name}_${version}`)
    await mkdir(join(root, 'DEBIAN'), { recursive: true })
    await mkdir(join(root, 'usr', 'share', 'doc', name), { recursive: true })
    const control = [
      `Package: ${name}`,
      `Version: ${version}`,
      `Architecture: ${arch}`,
      'Maintainer: cachemir tests <tests@example.org>',
      `Description: ${name}, a tiny package for the apt tests`,
      '',
    ].join('\n')
    await writeFile(join(root, 'DEBIAN', 'control'), control)
    await writeFile(join(root, 'usr', 'share', 'doc', name, 'version.txt'), `${name} ${version}\n`)
    const filename = `pool/${COMPONENT}/${name.slice(0, 1)}/${name}/${name}_${version}_${arch}.deb`
    await mkdir(join(dir, filename, '..'), { recursive: true })
    await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', root, join(dir, filename)], { timeout: 30_000 })
    const body = await readFile(join(dir, filename))
    const deb = { name, version, filename, size: body.length, sha256: sha256(body) }
    published.push(deb)
    indexes = await regenerate()
    return deb
  }

  for (const [name, version] of packages) await publish(name, version)
  return {
    dir,
    arch,
    published,
    get indexes(): AptIndexPaths {
      if (indexes === undefined) throw new Error('nothing published yet')
      return indexes
    },
    publish,
  }
}

/**
 * Serves the files below `dir` at `prefix` + their path: 200 with Content-Type and Content-Length
 * only (Node adds Date), 404 for anything else. No validators and no Cache-Control, so a cache
 * can only refetch, never revalidate. Files are read at request time: a publish shows at once.
 */
export function serveRepo(dir: string, prefix = '/'): Handler {
  return async (req, res) => {
    const path = decodeURIComponent((req.url ?? '').split('?', 1)[0] ?? '')
    const relative = path.startsWith(prefix) ? normalize(path.slice(prefix.length)) : undefined
    const notFound = (): Promise<void> =>
      sendBody(req, res, Buffer.from('not found\n'), { status: 404, headers: { 'content-type': 'text/plain' } })
    if (relative === undefined || relative.startsWith('..') || relative.startsWith(sep)) return notFound()
    let body: Buffer
    try {
      body = await readFile(join(dir, relative))
    } catch {
      return notFound()
    }
    await sendBody(req, res, body, { headers: { 'content-type': 'application/octet-stream' } })
  }
}
