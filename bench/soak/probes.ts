// bench/soak/probes.ts
// The clients: random requests through the mirror, every byte read and checked against the origin.

import { createHash } from 'node:crypto'
import { request, type Agent } from 'undici'
import { sha256 } from '../../test/helpers/origin.js'
import { MiB, sleep } from '../lib/util.js'
import { addError, addLost, addVerified, type ClientStats } from './client-stats.js'
import { inc } from './counts.js'
import { errorText, failureCode, isTimeout } from './failure-code.js'
import type { Incidents } from './incidents.js'
import type { Rand, SoakObject } from './objects.js'

/** Share of client requests on the flaky-only route `/d/` (the rest use `/m/` = [flaky, good]). */
const DIRECT_SHARE = 0.15
/** Client actions and their weights; a burst is 2–6 concurrent requests for one key. */
const ACTIONS = [
  ['get', 0.5],
  ['range', 0.12],
  ['head', 0.08],
  ['conditional', 0.12],
  ['burst', 0.13],
  ['cancel', 0.05],
] as const
/** Share of client requests that read slowly (a pause after every chunk). */
const SLOW_READER_SHARE = 0.05
const SLOW_READ_PAUSE_MS = 5
/** A client request with no progress for this long is an error of kind `timeout`. */
export const CLIENT_TIMEOUT_MS = 15_000

type Action = (typeof ACTIONS)[number][0]

interface Slice {
  readonly start: number
  /** inclusive */
  readonly end: number
}

interface Probe {
  readonly route: 'm' | 'd'
  readonly obj: SoakObject
  readonly action: Action
  readonly method: 'GET' | 'HEAD'
  readonly headers: Record<string, string>
  readonly slice: Slice | undefined
  readonly expectNotModified: boolean
  readonly cancelAfterBytes: number | undefined
  readonly slow: boolean
}

export interface ClientContext {
  readonly base: string
  readonly agent: Agent
  readonly rand: Rand
  readonly objects: readonly SoakObject[]
  /** Object ids, shuffled: popularity is skewed towards the front. */
  readonly order: readonly number[]
  readonly deadline: number
  /** Aborted when the drain time is over or the mirror died. */
  readonly end: AbortSignal
  readonly incidents: Incidents
  readonly stats: ClientStats
  readonly startedAt: number
}

/** One client loop: a request (or a burst) at a time until the deadline or the end signal. */
export async function runClient(ctx: ClientContext): Promise<void> {
  while (Date.now() < ctx.deadline && !ctx.end.aborted) {
    const action = pickAction(ctx.rand)
    if (action === 'burst') {
      const obj = pickObject(ctx)
      const route = ctx.rand() < DIRECT_SHARE ? 'd' : 'm'
      const k = 2 + Math.floor(ctx.rand() * 5)
      const members = Array.from({ length: k }, () => makeProbe(ctx.rand, ctx.rand() < 0.7 ? 'get' : 'range', obj, route, 'burst'))
      await Promise.all(members.map((p) => runProbe(p, ctx)))
    } else {
      await runProbe(makeProbe(ctx.rand, action, pickObject(ctx), ctx.rand() < DIRECT_SHARE ? 'd' : 'm', action), ctx)
    }
  }
}

function pickAction(rand: Rand): Action {
  let r = rand()
  for (const [action, weight] of ACTIONS) {
    if (r < weight) return action
    r -= weight
  }
  return 'get'
}

function pickObject(ctx: ClientContext): SoakObject {
  const id = ctx.order[Math.floor(ctx.order.length * ctx.rand() ** 2)] ?? 0
  return ctx.objects[id] as SoakObject
}

function makeProbe(rand: Rand, kind: Exclude<Action, 'burst'>, obj: SoakObject, route: 'm' | 'd', action: Action): Probe {
  const size = obj.body.length
  const probe: { -readonly [K in keyof Probe]: Probe[K] } = {
    route,
    obj,
    action,
    method: 'GET',
    headers: {},
    slice: undefined,
    expectNotModified: false,
    cancelAfterBytes: undefined,
    slow: rand() < SLOW_READER_SHARE,
  }
  switch (kind) {
    case 'head':
      probe.method = 'HEAD'
      break
    case 'range': {
      // bytes=a-b (up to 2 MiB), bytes=a- or bytes=-n.
      const r = rand()
      const start = Math.floor(rand() * size)
      if (r < 0.2) {
        const n = 1 + Math.floor(rand() * Math.min(size, 2 * MiB))
        probe.headers['range'] = `bytes=-${n}`
        probe.slice = { start: size - n, end: size - 1 }
      } else if (r < 0.3) {
        probe.headers['range'] = `bytes=${start}-`
        probe.slice = { start, end: size - 1 }
      } else {
        const end = Math.min(size - 1, start + Math.floor(rand() * 2 * MiB))
        probe.headers['range'] = `bytes=${start}-${end}`
        probe.slice = { start, end }
      }
      break
    }
    case 'conditional':
      if (obj.validators.etag !== undefined) {
        probe.headers['if-none-match'] = obj.validators.etag
        probe.expectNotModified = true
      } else if (obj.validators.lastModified !== undefined) {
        probe.headers['if-modified-since'] = obj.validators.lastModified
        probe.expectNotModified = true
      } else {
        probe.headers['if-none-match'] = '"soak-no-such-tag"'
      }
      break
    case 'cancel':
      probe.cancelAfterBytes = Math.floor(size * rand() * 0.5)
      break
    case 'get':
      break
  }
  return probe
}

/** One request: send, read every byte, verify, and count the outcome. */
async function runProbe(p: Probe, ctx: ClientContext): Promise<void> {
  const { stats, incidents } = ctx
  const path = `/${p.route}/o/${p.obj.id}`
  stats.requests++
  inc(stats.byAction, p.action)
  const t0 = Date.now()
  const sample =
    (extra: object = {}) =>
    (): object => ({
      path,
      action: p.action,
      method: p.method,
      headers: p.headers,
      atMs: t0 - ctx.startedAt,
      tookMs: Date.now() - t0,
      nearestCutMs: incidents.nearestCut(path, t0),
      ...extra,
    })
  let res: Awaited<ReturnType<typeof request>>
  try {
    res = await request(`${ctx.base}${path}`, {
      method: p.method,
      headers: p.headers,
      dispatcher: ctx.agent,
      signal: ctx.end,
      headersTimeout: CLIENT_TIMEOUT_MS,
      bodyTimeout: CLIENT_TIMEOUT_MS,
    })
  } catch (err) {
    if (ctx.end.aborted) stats.cancelledAtEnd++
    else {
      const code = failureCode(err)
      // A fill that fails before its first byte reaches this client closes the connection before
      // any header (Node sends headers with the first body chunk): a cut like any other.
      const kind = code === 'ECONNREFUSED' ? 'connect-refused' : isTimeout(code) ? 'timeout' : 'aborted (no headers)'
      const explained = kind === 'aborted (no headers)' && incidents.explainsCut(path, t0, Date.now())
      addError(stats, kind, explained, sample({ error: errorText(err) }))
      // The mirror may be gone: do not spin.
      await sleep(50)
    }
    return
  }
  const status = res.statusCode
  const cacheStatus = headerText(res.headers['cache-status'])
  inc(stats.byStatus, String(status))
  inc(stats.byCache, cacheKind(cacheStatus))
  inc(stats.byCacheDetail, cacheStatus === undefined ? '(none)' : cacheStatus.replace(/^cachemir;\s*/, '').replace(/;\s*ttl=-?\d+/, ''))

  const hash = createHash('sha256')
  let received = 0
  let cancelled = false
  let bodyError: unknown
  try {
    for await (const chunk of res.body) {
      const buf = chunk as Buffer
      hash.update(buf)
      received += buf.length
      if (p.cancelAfterBytes !== undefined && received >= p.cancelAfterBytes) {
        cancelled = true
        break
      }
      if (p.slow) await sleep(SLOW_READ_PAUSE_MS)
    }
  } catch (err) {
    bodyError = err
  }
  const t1 = Date.now()

  if (bodyError !== undefined) {
    if (ctx.end.aborted) stats.cancelledAtEnd++
    else if (isTimeout(failureCode(bodyError))) addError(stats, 'timeout', false, sample({ status, received, cacheStatus }))
    // A body cut short: acceptable only if the origin cut this object's body meanwhile.
    else {
      const error = errorText(bodyError)
      addError(stats, 'aborted', incidents.explainsCut(path, t0, t1), sample({ status, received, cacheStatus, error }))
    }
    return
  }
  if (cancelled) {
    stats.clientCancels++
    return
  }
  const size = p.obj.body.length
  const lose = (why: string, extra: object = {}): void =>
    addLost(stats, () => ({
      why,
      path,
      status,
      action: p.action,
      headers: p.headers,
      received,
      size,
      cacheStatus,
      atMs: t1 - ctx.startedAt,
      ...extra,
    }))
  if (status === 200 && p.method === 'HEAD') {
    if (headerText(res.headers['content-length']) === String(size)) stats.headChecked++
    else addError(stats, 'bad-head-length', false, sample({ contentLength: headerText(res.headers['content-length']), cacheStatus }))
  } else if (status === 200) {
    const digest = hash.digest('hex')
    if (received === size && digest === p.obj.digest) addVerified(stats, received, t1 - t0)
    else lose('200 body differs from the origin', { digest })
  } else if (status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headerText(res.headers['content-range']) ?? '')
    if (p.slice === undefined || range === null) return addError(stats, 'unexpected-206', false, sample({ cacheStatus }))
    const [start, end, total] = [Number(range[1]), Number(range[2]), Number(range[3])]
    const digest = hash.digest('hex')
    const want = sha256(p.obj.body.subarray(p.slice.start, p.slice.end + 1))
    if (start === p.slice.start && end === p.slice.end && total === size && received === end - start + 1 && digest === want)
      addVerified(stats, received, t1 - t0)
    else lose('206 slice differs from the origin', { contentRange: range[0], want: p.slice })
  } else if (status === 304) {
    const etag = headerText(res.headers['etag'])
    const strip = (tag: string): string => tag.replace(/^W\//, '')
    const sameTag = etag === undefined || p.obj.validators.etag === undefined || strip(etag) === strip(p.obj.validators.etag)
    if (p.expectNotModified && sameTag) stats.notModified++
    else addError(stats, 'unexpected-304', false, sample({ etag, cacheStatus }))
  } else if (status >= 500) {
    // Only the flaky-only route may fail: on /m/ the good upstream is always there.
    const explained =
      p.route === 'd' &&
      (status === 502 || status === 504
        ? incidents.explainsRefusal(t0, t1) || incidents.explainsCut(path, t0, t1)
        : incidents.explainsStatus(path, t0, t1))
    addError(stats, `http-${status}`, explained, sample({ cacheStatus }))
  } else {
    addError(stats, `http-${status}`, false, sample({ cacheStatus }))
  }
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

/** The Cache-Status outcome word, as in the mirror's log line: hit, miss, stale, bypass, … */
function cacheKind(value: string | undefined): string {
  if (value === undefined) return 'none'
  const params = value.split(';').map((s) => s.trim())
  const detail = params.find((s) => s.startsWith('detail='))?.slice(7)
  if (params.includes('hit')) return detail === undefined ? 'hit' : `hit-${detail}`
  const fwd = params.find((s) => s.startsWith('fwd='))?.slice(4) ?? 'none'
  return detail === 'stale-if-error' ? 'stale-if-error' : fwd
}
