// Reference servers and origins for the benchmarks, run as child processes:
//   node dist/bench/lib/server-child.js MODE PORT [--option value ...]
// Modes:
//   buffer  answers every GET with the same bytes from a Buffer (--size, --seed, --headers JSON)
//   delay   answers after --delay ms with a small cacheable body (a new URL is a new object)
//   file    streams --file with fs.createReadStream (highWaterMark 1 MiB), optionally throttled
//           to --rate bytes/s; GET /_count returns how many body requests it served.
//   files   a static file server: GET /NAME streams --dir/NAME (stat, then fs.createReadStream
//           with highWaterMark 1 MiB and the exact byte range, so a small file costs one read);
//           404 for anything else; GET /_count as above. It is both an origin and a reference.
import { createReadStream, stat, statSync } from 'node:fs'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { chunkBytes } from './util.js'

const [mode, portArg, ...rest] = process.argv.slice(2)
const opts = new Map<string, string>()
for (let i = 0; i + 1 < rest.length; i += 2) opts.set((rest[i] as string).replace(/^--/, ''), rest[i + 1] as string)
const num = (k: string, d: number): number => (opts.has(k) ? Number(opts.get(k)) : d)

let handler: (req: IncomingMessage, res: ServerResponse) => void
let served = 0

if (mode === 'buffer') {
  const body = chunkBytes(num('seed', 1), 0, num('size', 1024))
  const extra = JSON.parse(opts.get('headers') ?? '{}') as Record<string, string>
  const headers: Record<string, string | number> = {
    'content-type': 'application/octet-stream',
    'cache-control': 'public, max-age=86400',
    etag: '"small-1"',
    'last-modified': 'Mon, 02 Jan 2023 00:00:00 GMT',
    ...extra,
    'content-length': body.length,
  }
  handler = (_req, res) => {
    res.writeHead(200, headers)
    res.end(body)
  }
} else if (mode === 'delay') {
  const delay = num('delay', 20)
  const body = chunkBytes(7, 0, num('size', 1024))
  handler = (_req, res) => {
    setTimeout(() => {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'cache-control': 'public, max-age=86400',
        'content-length': body.length,
      })
      res.end(body)
    }, delay)
  }
} else if (mode === 'file') {
  const file = opts.get('file') ?? ''
  const size = statSync(file).size
  const rate = num('rate', 0)
  handler = (req, res) => {
    if (req.url === '/_count') {
      res.end(String(served))
      return
    }
    served++
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'cache-control': 'public, max-age=86400',
      'content-length': size,
      etag: '"file-1"',
    })
    if (req.method === 'HEAD') {
      res.end()
      return
    }
    const stream = createReadStream(file, { highWaterMark: rate > 0 ? 64 * 1024 : 1024 * 1024 })
    res.on('close', () => stream.destroy())
    if (rate <= 0) {
      stream.pipe(res)
      return
    }
    // Throttle: pace chunks so that bytes sent never run ahead of rate * elapsed.
    const start = Date.now()
    let sent = 0
    stream.on('data', (chunk: string | Buffer) => {
      sent += chunk.length
      const ok = res.write(chunk)
      const ahead = (sent / rate) * 1000 - (Date.now() - start)
      if (ahead > 0 || !ok) {
        stream.pause()
        const resume = (): void => {
          setTimeout(() => stream.resume(), Math.max(0, ahead))
        }
        if (ok) resume()
        else res.once('drain', resume)
      }
    })
    stream.on('end', () => res.end())
    stream.on('error', () => res.destroy())
  }
} else if (mode === 'files') {
  const dir = opts.get('dir') ?? ''
  handler = (req, res) => {
    const name = (req.url ?? '/').slice(1)
    if (name === '_count') {
      res.end(String(served))
      return
    }
    // One path segment of plain characters: never leave --dir.
    if (!/^[\w.-]+$/.test(name) || name.startsWith('.')) {
      res.writeHead(404, { 'content-length': 0 }).end()
      return
    }
    const file = join(dir, name)
    stat(file, (err, st) => {
      if (err !== null || !st.isFile()) {
        res.writeHead(404, { 'content-length': 0 }).end()
        return
      }
      served++
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'cache-control': 'public, max-age=86400',
        'content-length': st.size,
        etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
        'last-modified': st.mtime.toUTCString(),
      })
      if (req.method === 'HEAD' || st.size === 0) {
        res.end()
        return
      }
      // `end` bounds the read: without it a 16 KiB file would get a 1 MiB buffer and a second read.
      const stream = createReadStream(file, { highWaterMark: 1024 * 1024, start: 0, end: st.size - 1 })
      // A client that goes away mid-body is normal here; pipeline destroys both sides.
      pipeline(stream, res).catch(() => undefined)
    })
  }
} else {
  console.error(`unknown mode ${String(mode)}`)
  process.exit(2)
}

const server = createServer({ keepAliveTimeout: 60_000 }, handler)
server.listen(Number(portArg), '127.0.0.1')
process.on('SIGTERM', () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
})
