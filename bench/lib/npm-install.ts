// bench/lib/npm-install.ts
// The parent side of the `packages` scenario: start the local registry (npm-registry.js), read
// and reset its request counts, and time one `npm install` in a fresh project with an empty npm
// cache and empty user and global configs.
import { execFileSync, spawn } from 'node:child_process'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { freePort, procOf, tail, waitForPort, type Proc } from './util.js'

const REGISTRY_CHILD = join(dirname(fileURLToPath(import.meta.url)), 'npm-registry.js')

/** Starts the registry; building the large document takes a few seconds, so the wait is long. */
export async function startNpmRegistry(delayMs: number, bigBytes: number): Promise<Proc> {
  const port = await freePort()
  const child = spawn(process.execPath, [REGISTRY_CHILD, String(port), '--delay', String(delayMs), '--big-bytes', String(bigBytes)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const t = tail(child)
  await waitForPort(port, 90_000, child).catch((e: unknown) => {
    throw new Error(`npm registry: ${String(e)}\n${t()}`)
  })
  return procOf(child, port, t)
}

export interface RegistryLogLine {
  /** `GET /path`, plus ` [full]` for a full document. */
  url: string
  /** Arrival, ms after the last reset. */
  atMs: number
  /** Arrival to the last byte written. */
  ms: number
  /** The first word of the User-Agent (`npm/11.0.0`, `undici`, …). */
  ua: string
  /** The request's Cache-Control, Pragma and If-None-Match, joined by `; ` (empty when none). */
  cc: string
}

export interface RegistryCounts {
  requests: Record<string, number>
  log: RegistryLogLine[]
}

export async function registryCounts(registry: Proc): Promise<RegistryCounts> {
  const res = await request(`${registry.url}/-/_bench/counts`)
  return (await res.body.json()) as RegistryCounts
}

export async function resetRegistry(registry: Proc): Promise<void> {
  const res = await request(`${registry.url}/-/_bench/reset`)
  await res.body.text()
}

/** `npm --version`, or undefined when npm is not on PATH. */
export function npmVersion(): string | undefined {
  try {
    return execFileSync('npm', ['--version'], { env: cleanEnv(), encoding: 'utf8', timeout: 30_000 }).trim()
  } catch {
    return undefined
  }
}

/** The environment without npm_* variables: `npm run bench` sets dozens, and npm reads npm_config_*. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
}

export interface InstallResult {
  /** Spawn to exit. */
  ms: number
  exitCode: number | null
  /** Entries of package-lock.json's `packages` (installed copies, nested ones included). */
  installed: number
  /** How many of them were resolved to a tarball under `registry`. */
  resolvedHere: number
  /** npm's own per-request times (ms), from the `http fetch` lines of its debug log. */
  fetches: { documents: number[]; tarballs: number[]; other: number }
  output: string
}

/**
 * `npm install` in `dir/project` (created here, with `dependencies`), caching into `dir/npm-cache`
 * (created empty), with empty user and global configs: nothing of this machine's npm setup and
 * nothing from an earlier run is used. Killed after `timeoutMs`.
 */
export async function npmInstall(
  dir: string,
  registry: string,
  dependencies: Record<string, string>,
  timeoutMs: number,
): Promise<InstallResult> {
  const project = join(dir, 'project')
  await mkdir(project, { recursive: true })
  await mkdir(join(dir, 'npm-cache'))
  await writeFile(join(dir, 'userconfig'), '')
  await writeFile(join(dir, 'globalconfig'), '')
  await writeFile(
    join(project, 'package.json'),
    `${JSON.stringify({ name: 'bench-project', version: '1.0.0', private: true, dependencies }, null, 2)}\n`,
  )
  const args = [
    'install',
    '--registry',
    `${registry}/`,
    '--cache',
    join(dir, 'npm-cache'),
    '--userconfig',
    join(dir, 'userconfig'),
    '--globalconfig',
    join(dir, 'globalconfig'),
    '--no-audit',
    '--no-fund',
    '--prefer-online',
    '--no-update-notifier',
    '--loglevel',
    'warn',
  ]
  const t0 = performance.now()
  const child = spawn('npm', args, { cwd: project, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  const output = tail(child)
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const exitCode = await new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code))
    child.once('error', () => resolve(null))
  })
  const ms = performance.now() - t0
  clearTimeout(killer)
  let installed = 0
  let resolvedHere = 0
  try {
    const lock = JSON.parse(await readFile(join(project, 'package-lock.json'), 'utf8')) as {
      packages?: Record<string, { resolved?: string }>
    }
    for (const [path, entry] of Object.entries(lock.packages ?? {})) {
      if (path === '') continue
      installed++
      if (entry.resolved?.startsWith(`${registry}/`) === true) resolvedHere++
    }
  } catch {
    // No lock file: the install failed; exitCode and output say why.
  }
  return { ms, exitCode, installed, resolvedHere, fetches: await npmFetches(join(dir, 'npm-cache', '_logs')), output: output() }
}

/** The `http fetch GET 200 URL 59ms (cache miss)` lines npm writes to its debug log, by kind. */
async function npmFetches(logs: string): Promise<InstallResult['fetches']> {
  const fetches: InstallResult['fetches'] = { documents: [], tarballs: [], other: 0 }
  const files = await readdir(logs).catch(() => [])
  for (const file of files.filter((f) => f.endsWith('.log'))) {
    for (const m of (await readFile(join(logs, file), 'utf8')).matchAll(/ http fetch GET (\d+) (\S+) (\d+)ms/g)) {
      if (m[1] !== '200') fetches.other++
      else if ((m[2] as string).endsWith('.tgz')) fetches.tarballs.push(Number(m[3]))
      else fetches.documents.push(Number(m[3]))
    }
  }
  return fetches
}
