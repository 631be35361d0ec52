// src/config-upstream-auth.ts
// A route's upstream credential: the file's `upstreamAuth` and `shareAuthenticated` keys, checked
// when the file is read, and the secret, read from the environment when the config is resolved.
// No message written here ever contains the secret, nor a string that might be one.

import { inspect } from 'node:util'
import { HOP_BY_HOP } from './http/headers.js'
import { checkBoolean, checkKeys, isObject, type Given } from './config-values.js'

const AUTH_KEYS = ['env', 'scheme', 'header']
const AUTH_EXAMPLE = '{"env": "NPM_TOKEN", "scheme": "Bearer"}'
/** RFC 9110 §5.6.2: header names and authentication schemes are tokens. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** A portable environment variable name (POSIX: letters, digits, underscore; no leading digit). */
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
/** What a header value may hold: visible characters, spaces and tabs; no line breaks or NUL (RFC 9110 §5.5). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]+$/
/** Headers the mirror sets itself on every upstream request, or must never forward. */
const MANAGED_HEADERS = new Set([...HOP_BY_HOP, 'host', 'content-length', 'expect'])

/** `upstreamAuth` as the file declares it: where the secret is, not the secret. */
export interface UpstreamAuthSpec {
  /** Where it was declared, e.g. `cachemir.json: routes[0].upstreamAuth`. */
  readonly field: string
  /** The environment variable that holds the secret. */
  readonly env: string
  /** The request header that carries it, lower-case (default `authorization`). */
  readonly header: string
  /** Written before the secret with a space (`Bearer`); undefined: the variable holds the whole header value. */
  readonly scheme: string | undefined
}

/**
 * The resolved credential: a header and its value. The value is kept out of JSON and
 * `util.inspect` output, so a config or route that ends up in a log line or an admin response
 * shows `[redacted]` instead.
 */
export class UpstreamCredential {
  readonly header: string
  readonly #value: string
  constructor(header: string, value: string) {
    this.header = header
    this.#value = value
    Object.freeze(this)
  }
  /** The whole header value, scheme included. */
  get value(): string {
    return this.#value
  }
  toJSON(): { header: string; value: string } {
    return { header: this.header, value: '[redacted]' }
  }
  [inspect.custom](): string {
    return `UpstreamCredential { header: '${this.header}', value: '[redacted]' }`
  }
}

/** What kind of value was given, for messages that must not repeat a string that may be a secret. */
function kindOf(value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return 'a string (not shown: it may be a secret)'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

/** A token-valued key of `upstreamAuth` (`scheme`, `header`); undefined when absent or bad. */
function checkToken(field: string, value: unknown, example: string, problems: string[]): string | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string' && TOKEN.test(value)) return value
  problems.push(`${field}: expected a single word like "${example}", got ${kindOf(value)}`)
  return undefined
}

/**
 * A route's `upstreamAuth` and `shareAuthenticated` keys (`route` is the route's object in the
 * file, `field` where it is). Undefined when either is bad (the problems are recorded).
 */
export function checkRouteAuth(
  route: Record<string, unknown>,
  field: string,
  problems: string[],
): { upstreamAuth: UpstreamAuthSpec | undefined; shareAuthenticated: boolean } | undefined {
  const given = route['upstreamAuth']
  const upstreamAuth = given === undefined ? undefined : checkUpstreamAuth({ field: `${field}.upstreamAuth`, value: given }, problems)
  const shareAuthenticated = checkShareAuthenticated(route['shareAuthenticated'], given !== undefined, field, problems)
  if ((given !== undefined && upstreamAuth === undefined) || shareAuthenticated === undefined) return undefined
  return { upstreamAuth, shareAuthenticated }
}

/** `upstreamAuth`: an object naming the variable, an optional scheme and an optional header. */
function checkUpstreamAuth({ field, value }: Given, problems: string[]): UpstreamAuthSpec | undefined {
  if (!isObject(value)) {
    problems.push(`${field}: expected an object like ${AUTH_EXAMPLE} (the secret itself never goes in the file), got ${kindOf(value)}`)
    return undefined
  }
  checkKeys(value, AUTH_KEYS, (key) => `${field}.${key}`, problems)
  const count = problems.length
  const env = value['env']
  if (typeof env !== 'string' || !VARIABLE_NAME.test(env)) {
    problems.push(`${field}.env: expected the name of an environment variable like "NPM_TOKEN", got ${kindOf(env)}`)
  }
  const scheme = checkToken(`${field}.scheme`, value['scheme'], 'Bearer', problems)
  const header = checkToken(`${field}.header`, value['header'], 'X-Api-Key', problems)?.toLowerCase() ?? 'authorization'
  if (MANAGED_HEADERS.has(header)) {
    problems.push(`${field}.header: expected a header the mirror does not set itself, got ${JSON.stringify(value['header'])}`)
  }
  if (problems.length > count || typeof env !== 'string') return undefined
  return { field, env, header, scheme }
}

/** `shareAuthenticated`: a boolean (default false), and only next to an `upstreamAuth`. */
function checkShareAuthenticated(value: unknown, hasAuth: boolean, field: string, problems: string[]): boolean | undefined {
  if (value === undefined) return false
  const share = checkBoolean({ field: `${field}.shareAuthenticated`, value }, problems)
  if (share !== undefined && !hasAuth) {
    // Without a credential there is nothing it could share; most likely a misunderstanding
    // (clients' own Authorization requests are never shared this way).
    problems.push(`${field}.shareAuthenticated: expected only on a route with upstreamAuth, got it without one`)
    return undefined
  }
  return share
}

/**
 * Reads the credential's variable from `env`. An unset, empty or unusable variable is a problem
 * naming the field and the variable, never the value. Surrounding whitespace is trimmed.
 */
export function resolveUpstreamAuth(
  spec: UpstreamAuthSpec | undefined,
  env: Record<string, string | undefined>,
  problems: string[],
): UpstreamCredential | undefined {
  if (spec === undefined) return undefined
  const secret = env[spec.env]?.trim() ?? ''
  const where = `${spec.field}.env: expected the environment variable ${spec.env} to hold the credential`
  if (secret === '') {
    problems.push(`${where}, got ${env[spec.env] === undefined ? 'an unset variable' : 'an empty one'}`)
    return undefined
  }
  if (!FIELD_VALUE.test(secret)) {
    problems.push(`${where}, got a value with line breaks or control characters (not shown)`)
    return undefined
  }
  if (spec.scheme !== undefined && secret.toLowerCase().startsWith(`${spec.scheme.toLowerCase()} `)) {
    // The header would say "Bearer Bearer …", which no upstream accepts.
    problems.push(`${where} without the scheme (the scheme key adds "${spec.scheme} "), got a value that starts with it`)
    return undefined
  }
  return new UpstreamCredential(spec.header, spec.scheme === undefined ? secret : `${spec.scheme} ${secret}`)
}
