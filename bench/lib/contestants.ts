// The contestants of the fill scenarios (5 and 6): a throttled origin serving one file, cachemir
// in front of it, and nginx with proxy_cache_lock when it is installed.
import { join } from 'node:path'
import { NGINX_SETTINGS, nginxInfo, startNginx } from './nginx.js'
import { MiB, startCachemir, startServer, type Proc } from './util.js'

export interface FillContestants {
  readonly origin: Proc
  readonly mirror: Proc
  /** Undefined when nginx is not installed (a note says why). */
  readonly nginx: Proc | undefined
}

/** Starts them in `dir`; every process goes into `procs` for the caller's finally. */
export async function startFillContestants(
  dir: string,
  file: string,
  rateBps: number,
  nginxCacheMiB: number,
  procs: Proc[],
  notes: string[],
): Promise<FillContestants> {
  const origin = await startServer('file', { file, rate: rateBps })
  procs.push(origin)
  const mirror = await startCachemir([
    '--upstream',
    origin.url,
    '--cache-dir',
    join(dir, 'cache'),
    '--max-memory',
    '32MiB',
    '--max-disk',
    '2GiB',
  ])
  procs.push(mirror)
  if (nginxInfo().path === undefined) {
    notes.push(`nginx rows skipped: ${nginxInfo().note}`)
    return { origin, mirror, nginx: undefined }
  }
  const nginx = await startNginx({ upstream: origin.url, dir: join(dir, 'nginx'), maxCacheBytes: nginxCacheMiB * MiB })
  procs.push(nginx)
  notes.push(`nginx (${nginxInfo().version}): ${NGINX_SETTINGS}; its RSS is the sum over master, worker, cache manager and loader`)
  return { origin, mirror, nginx }
}
