// src/upstream/fetch-fill-response.ts
// The upstream exchange behind one fill: the request (conditional when a stored entry is being
// revalidated), its unconditional repeat when a 304 does not select that entry (RFC 9111 §4.3.4),
// and the redirects followed within the route.

import { getRaw } from '../http/headers.js'
import { buildConditionalHeaders, isSelectedBy304 } from '../policy/revalidation.js'
import { discardBody, type UpstreamClient, type UpstreamResponse } from './client.js'
import type { FillParams } from './fill-params.js'
import { isRedirect, redirectWithinRoute } from './redirects.js'

/** Redirect hops a fill follows at most (routes with followRedirects). */
const MAX_REDIRECTS = 5

/** What a fill asks the upstream for. */
export type FillRequest = Pick<FillParams, 'route' | 'relativePath' | 'headers' | 'previous'>

/**
 * Sends the fill's GET and returns the answer to use: a 304 only when it selects `previous`, and
 * with followRedirects the response at the end of the route's redirects (at most MAX_REDIRECTS
 * hops; a redirect leaving the route is returned as is). Bodies of the answers not used are
 * dropped. Throws what UpstreamClient.request throws.
 */
export async function fetchFillResponse(upstream: UpstreamClient, fill: FillRequest, signal: AbortSignal): Promise<UpstreamResponse> {
  const { route, relativePath, previous } = fill
  const conditionals = previous === undefined ? {} : buildConditionalHeaders(previous.meta.headers)
  const headers = { ...fill.headers, ...conditionals }
  let response = await upstream.request(route, { method: 'GET', relativePath, headers, signal })
  // §4.3.4: a 304 naming a different strong validator does not select the stored response.
  // Ask again, unconditionally, rather than pair the old body with new headers.
  if (response.status === 304 && previous !== undefined && !isSelectedBy304(previous.meta.headers, response.headers)) {
    response.body.resume()
    response = await upstream.request(route, { method: 'GET', relativePath, headers: fill.headers, signal })
  }
  // Redirects within the route are followed when the route says so; the final answer is
  // stored under the key that was asked for.
  for (let hop = 0; route.followRedirects && hop < MAX_REDIRECTS && isRedirect(response.status); hop++) {
    const next = redirectWithinRoute(route, response.url, getRaw(response.headers, 'location'))
    if (next === undefined) break
    discardBody(response.body)
    response = await upstream.request(route, { method: 'GET', relativePath: next, headers: fill.headers, signal })
  }
  return response
}
