// test/helpers/apt-get.ts
// The real apt-get, sandboxed in a temp dir: its own configuration, sources list, state, cache and
// dpkg status, none of the machine's apt configuration, no proxy, loopback only.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { errorCode } from '../../src/errors.js'
import { makeTempDir } from './temp-dir.js'

/** Longest one apt-get run may take before it is killed (well inside the test timeout); one takes under a second. */
export const APT_TIMEOUT_MS = 20_000

export interface AptResult {
  /** The exit code, or the signal name when it was killed. */
  readonly code: number | string
  readonly stdout: string
  readonly stderr: string
}

export interface AptClient {
  /** Holds etc/ (configuration and sources), state/, cache/ and the downloads dir. */
  readonly dir: string
  /** Where `apt-get download` puts the .deb files it fetches. */
  readonly downloads: string
  /** Runs `apt-get ARGS` (cwd: the downloads dir), killed after APT_TIMEOUT_MS. */
  run(args: readonly string[]): Promise<AptResult>
}

/** Why the real apt-get cannot run here, or undefined when it can. */
export function missingAptGet(): string | undefined {
  try {
    execFileSync('apt-get', ['--version'], { stdio: 'ignore', timeout: 10_000 })
  } catch (err) {
    return `apt-get is not available (${errorCode(err) ?? String(err)})`
  }
  // apt's own dirs and its download sandbox: without root, apt-get refuses to update.
  if (process.getuid?.() !== 0) return 'apt-get runs as root here (its sandbox user and lock files need it)'
  return undefined
}

/**
 * A fresh apt client (an empty state and cache: a new machine) whose only source is `sourcesLine`,
 * reached directly or through `httpProxy` (Acquire::http::Proxy).
 * APT_CONFIG is read before /etc/apt/apt.conf.d and /etc/apt/apt.conf, so pointing Dir::Etc::Parts
 * and Dir::Etc::Main away from them keeps every file of the machine's configuration out. Every
 * child still running is killed by t.after.
 */
export async function makeAptClient(t: TestContext, sourcesLine: string, arch: string, httpProxy = 'DIRECT'): Promise<AptClient> {
  // Registered before the temp dir's removal, so it runs first.
  const children = new Set<ChildProcess>()
  t.after(() => {
    for (const child of children) child.kill('SIGKILL')
  })
  const dir = await makeTempDir(t, 'cachemir-apt-client-')
  const etc = join(dir, 'etc')
  const downloads = join(dir, 'downloads')
  const dirs = ['etc/apt.conf.d', 'etc/sources.list.d', 'etc/preferences.d', 'etc/trusted.gpg.d', 'etc/auth.conf.d']
  for (const sub of [...dirs, 'state/lists/partial', 'cache/archives/partial', 'log', 'downloads']) {
    await mkdir(join(dir, sub), { recursive: true })
  }
  await writeFile(join(dir, 'status'), '')
  await writeFile(join(etc, 'sources.list'), `${sourcesLine}\n`)
  const settings: Record<string, string> = {
    // Every file apt looks for under /etc/apt (sources, preferences, keys, auth.conf) is looked
    // for here instead; the configuration is this file alone.
    'Dir::Etc': etc,
    'Dir::Etc::Main': '/dev/null',
    'Dir::Etc::Parts': join(etc, 'apt.conf.d'),
    'Dir::Etc::SourceList': join(etc, 'sources.list'),
    'Dir::Etc::SourceParts': join(etc, 'sources.list.d'),
    'Dir::Etc::netrc': join(etc, 'auth.conf'),
    'Dir::Etc::netrcparts': join(etc, 'auth.conf.d'),
    'Dir::State': join(dir, 'state'),
    'Dir::State::status': join(dir, 'status'),
    'Dir::Cache': join(dir, 'cache'),
    'Dir::Log': join(dir, 'log'),
    // The dirs are this client's alone; never take the machine's dpkg or apt locks.
    'Debug::NoLocking': 'true',
    'APT::Sandbox::User': 'root',
    'APT::Architecture': arch,
    'Acquire::Languages': 'none',
    // A failure must show, not be retried away with back-off.
    'Acquire::Retries': '0',
    'Acquire::http::Timeout': '20',
    'Acquire::http::Proxy': httpProxy,
    'Acquire::https::Proxy': 'DIRECT',
  }
  const lines = Object.entries(settings).map(([key, value]) => `${key} "${value}";`)
  lines.push(`APT::Architectures { "${arch}"; };`)
  const config = join(etc, 'apt.conf')
  await writeFile(config, `${lines.join('\n')}\n`)

  const run = (args: readonly string[]): Promise<AptResult> =>
    new Promise((resolve) => {
      // No proxy variables, no locale surprises: only what apt needs.
      const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', APT_CONFIG: config, HOME: dir, LANG: 'C', LC_ALL: 'C' }
      const child = spawn('apt-get', args, { cwd: downloads, env, stdio: ['ignore', 'pipe', 'pipe'] })
      children.add(child)
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      const timer = setTimeout(() => child.kill('SIGKILL'), APT_TIMEOUT_MS)
      child.once('error', (err) => {
        clearTimeout(timer)
        children.delete(child)
        resolve({ code: -1, stdout, stderr: `${stderr}${String(err)}` })
      })
      child.once('close', (code, signal) => {
        clearTimeout(timer)
        children.delete(child)
        resolve({ code: code ?? signal ?? -1, stdout, stderr })
      })
    })
  return { dir, downloads, run }
}
