// bench/soak/failure-code.ts
// How a failed client request is classified and described: error codes, timeouts, error text.

import { errorCode } from '../../src/errors.js'

/** What a failed request is classified by: the error's code, else its cause's code, else its name. */
export function failureCode(err: unknown): string {
  const cause = typeof err === 'object' && err !== null && 'cause' in err ? err.cause : undefined
  return errorCode(err) ?? errorCode(cause) ?? (err instanceof Error ? err.name : undefined) ?? 'unknown'
}

/** `Name: message` for an Error, as String(err) prints it. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.toString() : String(err)
}

/** undici's headers, body and connect timeouts. */
export function isTimeout(code: string): boolean {
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT'
}
