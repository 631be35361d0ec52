// src/commands/admin-client.ts
// The CLI's side of the admin API: which running mirror (--server, CACHEMIR_SERVER, else the
// configured listen address), with the admin token when one is given, and one-line errors.

import { request } from 'undici'
import { describeListen } from '../config.js'
import { checkListen } from '../config-values.js'
import { ConfigError } from '../errors.js'

export interface ServerTarget {
  readonly base: string
  readonly token: string | undefined
}

/** `--server` / `CACHEMIR_SERVER`, else `http://` + `--listen` / `CACHEMIR_LISTEN` (default 127.0.0.1:8080). */
export function serverTarget(
  args: { server?: string | undefined; listen?: string | undefined; adminToken?: string | undefined },
  env: Record<string, string | undefined>,
): ServerTarget {
  const token = args.adminToken ?? (env['CACHEMIR_ADMIN_TOKEN']?.trim() || undefined)
  const server = args.server ?? (env['CACHEMIR_SERVER']?.trim() || undefined)
  if (server !== undefined) {
    if (!URL.canParse(server) || !/^https?:$/.test(new URL(server).protocol))
      throw new ConfigError([`--server: expected an http:// or https:// URL, got ${JSON.stringify(server)}`])
    return { base: server.replace(/\/+$/, ''), token }
  }
  const problems: string[] = []
  const listenValue = args.listen ?? (env['CACHEMIR_LISTEN']?.trim() || '127.0.0.1:8080')
  const listen = checkListen({ field: args.listen !== undefined ? '--listen' : 'CACHEMIR_LISTEN', value: listenValue }, problems)
  if (listen === undefined) throw new ConfigError(problems)
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host
  return { base: `http://${describeListen({ host, port: listen.port })}`, token }
}

/** One admin request; throws a one-line Error for an unreachable server or a non-2xx answer. */
export async function adminRequest(target: ServerTarget, path: string, method: 'GET' | 'POST', body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (target.token !== undefined) headers['authorization'] = `Bearer ${target.token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res
  try {
    res = await request(`${target.base}/_cachemir/${path}`, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      headersTimeout: 30_000,
      bodyTimeout: 120_000,
    })
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : String(err)
    throw new Error(`cannot reach the mirror at ${target.base}: ${code}`, { cause: err })
  }
  const text = await res.body.text()
  if (res.statusCode < 200 || res.statusCode >= 300)
    throw new Error(`${target.base}/_cachemir/${path}: HTTP ${res.statusCode}: ${text.trim().split('\n')[0] ?? ''}`)
  return JSON.parse(text) as unknown
}
