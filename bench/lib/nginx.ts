// bench/lib/nginx.ts
// nginx as a contestant: the caching reverse proxy users would otherwise pick. Finds the binary (or,
// when allowed, installs nginx-light) and runs it in the foreground, everything in a temp dir.
import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { Row } from './types.js'
import {
  fmt,
  fmtSpread,
  freePort,
  MiB,
  procStatusBytes,
  spread as spreadOf,
  stopChild,
  tail,
  waitForPort,
  type Proc,
  type Spread,
} from './util.js'

export interface NginxInfo {
  /** Absolute path of the binary, or undefined when nginx is not available. */
  path: string | undefined
  /** `nginx/1.22.1`, or '' */
  version: string
  /** How it was found, or why it is missing. */
  note: string
}

let info: NginxInfo | undefined

function lookup(): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean), '/usr/sbin']
  for (const d of dirs) {
    try {
      accessSync(join(d, 'nginx'), constants.X_OK)
      return join(d, 'nginx')
    } catch {
      // not here
    }
  }
  return undefined
}

function aptInstall(): boolean {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const install = (): boolean =>
    spawnSync('apt-get', ['install', '-y', 'nginx-light'], { stdio: 'ignore', timeout: 180_000, env }).status === 0
  if (install()) return true
  // A fresh machine may have no package lists yet.
  spawnSync('apt-get', ['update'], { stdio: 'ignore', timeout: 120_000, env })
  return install()
}

/**
 * Decide once whether nginx can run. As root with CACHEMIR_BENCH_INSTALL=1, a missing nginx is
 * installed with `apt-get install -y nginx-light` (as loadgen.ts does for wrk).
 */
export function nginxInfo(): NginxInfo {
  if (info !== undefined) return info
  let path = lookup()
  let note = path !== undefined ? `found at ${path}` : 'nginx not installed'
  if (path === undefined && process.getuid?.() === 0 && process.env['CACHEMIR_BENCH_INSTALL'] === '1') {
    const ok = aptInstall()
    path = lookup()
    note =
      ok && path !== undefined ? `nginx-light installed by apt-get (${path})` : 'nginx not installed (apt-get install nginx-light failed)'
  }
  let version = ''
  if (path !== undefined) {
    const r = spawnSync(path, ['-v'], { encoding: 'utf8', timeout: 10_000 })
    version = /nginx\/[\w.]+/.exec(`${r.stderr}${r.stdout}`)?.[0] ?? ''
    if (r.status !== 0) {
      note = `nginx not installed (${path} does not run: ${
        String(r.error ?? r.stderr)
          .trim()
          .slice(0, 200) || `exit ${String(r.status)}`
      })`
      path = undefined
    }
  }
  info = { path, version, note }
  return info
}

/** The settings that matter for the comparison, for the scenarios' notes and the README. */
export const NGINX_SETTINGS =
  'worker_processes 1; sendfile on; tcp_nopush on; keepalive_requests 1000000; access_log off; ' +
  'proxy_cache_path levels=1:2 keys_zone=16m use_temp_path=off inactive=1d; proxy_cache_valid 200 1d (origin Cache-Control honoured); ' +
  'proxy_cache_lock on (lock_timeout 60s, lock_age 60s); proxy_http_version 1.1 with upstream keepalive 32; proxy_buffering on (default)'

export interface NginxProc extends Proc {
  /** Pids of the master's children (the worker, cache manager and cache loader). */
  childPids(): number[]
  /** Last lines of the error log. */
  errorLogTail(): string
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export interface NginxOptions {
  /** Origin base URL, `http://127.0.0.1:PORT`. */
  upstream: string
  /** An empty directory that holds the config, logs, pid file, temp files and cache. */
  dir: string
  /** proxy_cache_path max_size, in bytes. */
  maxCacheBytes: number
}

/** Start nginx as a caching reverse proxy on 127.0.0.1:PORT in the foreground (`daemon off`). */
export async function startNginx(opts: NginxOptions): Promise<NginxProc> {
  const bin = nginxInfo().path
  if (bin === undefined) throw new Error('nginx not installed')
  const up = new URL(opts.upstream)
  const port = await freePort()
  const d = opts.dir
  mkdirSync(join(d, 'tmp'), { recursive: true })
  const conf = join(d, 'nginx.conf')
  const errorLog = join(d, 'error.log')
  writeFileSync(
    conf,
    [
      '# Written by bench/lib/nginx.ts for one benchmark scenario.',
      'worker_processes 1;',
      // As root the worker would switch to "nobody", which cannot enter the 0700 temp dir.
      process.getuid?.() === 0 ? 'user root root;' : '',
      `pid ${d}/nginx.pid;`,
      `error_log ${errorLog} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${d}/tmp/${t};`),
      '  sendfile on;',
      '  tcp_nopush on;',
      '  keepalive_timeout 65s;',
      '  keepalive_requests 1000000;',
      `  proxy_cache_path ${d}/cache levels=1:2 keys_zone=bench:16m max_size=${Math.ceil(opts.maxCacheBytes / MiB)}m inactive=1d use_temp_path=off;`,
      `  upstream origin { server ${up.hostname}:${up.port}; keepalive 32; }`,
      '  server {',
      `    listen 127.0.0.1:${port};`,
      '    location / {',
      '      proxy_pass http://origin;',
      '      proxy_http_version 1.1;',
      '      proxy_set_header Connection "";',
      '      proxy_cache bench;',
      '      proxy_cache_valid 200 1d;',
      '      proxy_cache_lock on;',
      '      proxy_cache_lock_timeout 60s;',
      '      proxy_cache_lock_age 60s;',
      '      add_header X-Cache-Status $upstream_cache_status;',
      '    }',
      '  }',
      '}',
      '',
    ].join('\n'),
  )
  const child = spawn(bin, ['-p', `${d}/`, '-c', conf, '-e', errorLog, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const t = tail(child)
  const errorLogTail = (): string => {
    try {
      return readFileSync(errorLog, 'utf8').slice(-4000)
    } catch {
      return ''
    }
  }
  const master = child.pid ?? -1
  // Every pid seen under the master, so a worker orphaned by a SIGKILLed master is still ended.
  const seen = new Set<number>()
  const childPids = (): number[] => {
    const pids = childrenOf(master)
    for (const p of pids) seen.add(p)
    return pids
  }
  const stop = async (): Promise<void> => {
    childPids()
    await stopChild(child)
    for (const p of seen) if (isAlive(p)) process.kill(p, 'SIGKILL')
  }
  try {
    await waitForPort(port, 15_000, child)
  } catch (e) {
    await stop()
    throw new Error(`nginx: ${String(e)}\n${t()}\n${errorLogTail()}`, { cause: e })
  }
  childPids()
  return {
    child,
    pid: master,
    port,
    url: `http://127.0.0.1:${port}`,
    stderrTail: t,
    errorLogTail,
    childPids,
    rssBytes: () => {
      const own = procStatusBytes(master)
      return own === undefined ? undefined : childPids().reduce((sum, p) => sum + (procStatusBytes(p) ?? 0), own)
    },
    stop,
  }
}

/** The row a scenario prints instead of nginx figures when nginx cannot run: never fake figures. */
export function nginxMissingRow(scenario: string, metric: string, target: string): Row {
  return {
    scenario,
    reference: 'nginx proxy_cache',
    metric,
    cachemir: '–',
    referenceFigure: 'nginx not installed',
    ratio: '–',
    target,
    met: 'n/a',
  }
}

/**
 * Where nginx is out of reach for any Node server, the table says so: this row compares the bare
 * Node reference of the same run (not cachemir) with nginx. It is the runtime's ceiling for the
 * "≥ 1.0× nginx" goal.
 */
export function runtimeCeilingRow(scenario: string, bareName: string, bare: Spread, nginx: Spread): Row {
  const r = bare.median / nginx.median
  return {
    scenario,
    reference: 'nginx proxy_cache',
    metric: `req/s of the ${bareName} (not cachemir) vs nginx: what the runtime allows`,
    cachemir: fmtSpread(bare, 0),
    referenceFigure: fmtSpread(nginx, 0),
    ratio: `${fmt(r, 2)}×`,
    target: '–',
    met: 'n/a',
  }
}

/**
 * The nginx rows of a req/s scenario (1 and 2): cachemir's req/s and p99 against nginx's, and the
 * bare Node reference against nginx (the runtime's ceiling); or "not installed" rows.
 */
export function nginxRpsRows(
  scenario: string,
  cachemir: { rps: Spread; p99: Spread },
  bare: { name: string; rps: Spread },
  nginxRuns: readonly { rps: number; p99Ms: number }[],
): { rows: Row[]; data: unknown } {
  if (nginxRuns.length === 0) {
    return {
      rows: [nginxMissingRow(scenario, 'req/s', '≥ 1.0× (goal)'), nginxMissingRow(scenario, 'p99 latency (ms)', '≤ 1.0× (goal)')],
      data: null,
    }
  }
  const rps = spreadOf(nginxRuns.map((x) => x.rps))
  const p99 = spreadOf(nginxRuns.map((x) => x.p99Ms))
  const rpsVs = cachemir.rps.median / rps.median
  const p99Vs = cachemir.p99.median / p99.median
  const ref = 'nginx proxy_cache'
  return {
    rows: [
      {
        scenario,
        reference: ref,
        metric: 'req/s',
        cachemir: fmtSpread(cachemir.rps, 0),
        referenceFigure: fmtSpread(rps, 0),
        ratio: `${fmt(rpsVs, 2)}×`,
        target: '≥ 1.0× (goal)',
        met: rpsVs >= 1 ? 'yes' : 'no',
      },
      {
        scenario,
        reference: ref,
        metric: 'p99 latency (ms)',
        cachemir: fmtSpread(cachemir.p99, 2),
        referenceFigure: fmtSpread(p99, 2),
        ratio: `${fmt(p99Vs, 2)}×`,
        target: '≤ 1.0× (goal)',
        met: p99Vs <= 1 ? 'yes' : 'no',
      },
      runtimeCeilingRow(scenario, bare.name, bare.rps, rps),
    ],
    data: { rps, p99Ms: p99, raw: nginxRuns, rpsRatio: rpsVs, p99Ratio: p99Vs },
  }
}
