// src/log.ts
// The root logger, redaction, and the one `request completed` line per request.

import { pino, type DestinationStream, type Logger } from 'pino'
import pretty from 'pino-pretty'
import type { LogLevel } from './config.js'
import type { Exchange } from './proxy/exchange.js'
import { outcomeWord } from './respond/cache-status.js'

/** Creates the root logger. Without a destination, logs go to stdout through an async writer. */
export function createLogger(level: LogLevel, destination?: DestinationStream, format: 'json' | 'pretty' = 'json'): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', 'headers.authorization', 'headers.cookie'],
        censor: '[redacted]',
      },
    },
    destination ??
      (format === 'pretty' ? pretty({ colorize: process.stdout.isTTY, sync: true }) : pino.destination({ dest: 1, sync: false })),
  )
}

/**
 * Logs the request-completed line: 5xx at error, 4xx at info, the rest at info too
 * (fastify's policy); a response cut short (client gone or upstream failure) says `aborted`.
 */
export function logCompleted(root: Logger, x: Exchange, startedAt: number, bytes: number): void {
  const statusCode = x.res.statusCode
  // Checked on the root logger, so a disabled line costs neither the fields nor a child logger.
  if (!root.isLevelEnabled(statusCode >= 500 ? 'error' : 'info')) return
  const fields = {
    method: x.req.method,
    url: x.req.url,
    statusCode,
    cache: outcomeWord(x.outcome),
    bytes,
    durationMs: Date.now() - startedAt,
    upstreamMs: x.upstreamMs,
    aborted: !x.res.writableFinished,
  }
  if (statusCode >= 500) x.log.error(fields, 'request completed')
  else x.log.info(fields, 'request completed')
}
