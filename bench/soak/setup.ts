// bench/soak/setup.ts
// Everything the load runs against: objects, origins, the mirror, the clients' agent; and its end.

import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { CLI, sleep } from '../lib/util.js'
import { Incidents } from './incidents.js'
import type { Load } from './load.js'
import {
  calibrateStall,
  countFds,
  diskUsage,
  startMirror,
  stopMirror,
  STALL_IDLE_MS,
  type DiskUsage,
  type MirrorProcess,
} from './mirror.js'
import { makeObjects, mulberry32, type Rand, type SoakObject } from './objects.js'
import type { Options } from './options.js'
import { startFlaky, startGood, type Flaky, type Good } from './origins.js'
import { failureCode } from './failure-code.js'
import { CLIENT_TIMEOUT_MS } from './probes.js'
import { say } from './report.js'

export interface Setup {
  readonly objects: readonly SoakObject[]
  readonly order: readonly number[]
  readonly rand: Rand
  readonly incidents: Incidents
  readonly good: Good
  readonly flaky: Flaky
  readonly mirror: MirrorProcess
  readonly mirrorArgs: readonly string[]
  readonly base: string
  readonly agent: Agent
  /** Temp dir holding the config file and the cache dir. */
  readonly dir: string
  readonly cacheDir: string
  readonly stallNote: string
  /** Read by the flaky origin on every request; set once calibration has shown stalls are cut. */
  readonly stalls: { enabled: boolean }
}

export async function setUp(opts: Options): Promise<Setup> {
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run \`npx tsc -p tsconfig.json\` first`)
  const objects = makeObjects(opts.objects, opts.seed)
  const rand = mulberry32(opts.seed ^ 0x5eed)
  const order = objects.map((o) => o.id)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[order[i], order[j]] = [order[j] as number, order[i] as number]
  }
  const incidents = new Incidents()
  const stalls = { enabled: false }
  const good = await startGood(objects)
  const flaky = await startFlaky(objects, incidents, rand, () => stalls.enabled)
  const dir = await mkdtemp(join(tmpdir(), 'cachemir-soak-'))
  const { mirror, args, cacheDir, hasIdleTimeout } = await startMirror(opts, dir, { good: good.url, flaky: flaky.url })
  const base = `http://127.0.0.1:${mirror.port}`
  const agent = new Agent({ keepAliveTimeout: 2000, headersTimeout: CLIENT_TIMEOUT_MS, bodyTimeout: CLIENT_TIMEOUT_MS })
  say(`mirror pid ${mirror.pid} on ${base}; origins good ${good.url}, flaky ${flaky.url}`)

  // Stalls only when the mirror really cuts a silent upstream body quickly.
  let stallNote: string
  if (!hasIdleTimeout) {
    stallNote =
      'skipped: the mirror has no --idle-timeout flag, so its upstream body idle timeout is the built-in 60 s; a stalled fill would hold its clients longer than the run can wait'
  } else if (opts.seconds * 1000 < STALL_IDLE_MS * 5) {
    stallNote = `skipped: --seconds ${opts.seconds} is too short for ${STALL_IDLE_MS} ms idle cuts`
  } else {
    const { cutMs } = await calibrateStall(base, agent, flaky)
    stalls.enabled = cutMs !== undefined
    stallNote = stalls.enabled
      ? `on: --idle-timeout ${STALL_IDLE_MS}ms; a stalled upstream body was cut after ${cutMs} ms in calibration`
      : `skipped: the mirror was started with --idle-timeout ${STALL_IDLE_MS}ms but did not cut a stalled upstream body within ${STALL_IDLE_MS + 2000} ms (its built-in 60 s seems still in force)`
  }
  say(`stalls ${stallNote}`)
  return {
    objects,
    order,
    rand,
    incidents,
    good,
    flaky,
    mirror,
    mirrorArgs: args.map((a) => a.replace(dir, '$TMP')),
    base,
    agent,
    dir,
    cacheDir,
    stallNote,
    stalls,
  }
}

export interface Teardown {
  readonly fdsEnd: number | undefined
  readonly disk: DiskUsage
  readonly health: unknown
  readonly shutdown: string
}

/** With the mirror quiet: descriptors, disk, health; then SIGTERM, and everything closed. */
export async function tearDown(setup: Setup, load: Load): Promise<Teardown> {
  const { mirror, agent } = setup
  let health: unknown
  if (load.crashed === undefined) {
    try {
      const res = await request(`${setup.base}/_cachemir/health`, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 })
      health = await res.body.json()
    } catch (err) {
      health = { error: failureCode(err) }
    }
  }
  // Count descriptors once the clients' keep-alive connections are gone (upstream ones may stay).
  await agent.close()
  await sleep(300)
  const fdsEnd = countFds(mirror.pid)
  const disk = diskUsage(setup.cacheDir)
  const shutdown = load.crashed !== undefined ? `crashed (${load.crashed})` : await stopMirror(mirror)
  await setup.flaky.close()
  await setup.good.close()
  await rm(setup.dir, { recursive: true, force: true, maxRetries: 5 })
  return { fdsEnd, disk, health, shutdown }
}
