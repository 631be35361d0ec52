// Test objects for the bulk scenarios: deterministic files, their digests, and the file origin's
// request counter.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { join } from 'node:path'
import { request } from 'undici'
import { chunkBytes, MiB } from './util.js'

/** Write `mib` MiB of deterministic bytes to `file`. */
export async function writeDeterministicFile(file: string, mib: number, seed: number): Promise<void> {
  const out = createWriteStream(file)
  for (let i = 0; i < mib; i++) {
    if (!out.write(chunkBytes(seed, i, MiB))) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}

/** sha256 of a file, hex. */
export async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256')
  for await (const c of createReadStream(file)) h.update(c as Buffer)
  return h.digest('hex')
}

/**
 * A deterministic file `name` of `mib` MiB in `dir`, its sha256, and how long hashing it took in
 * this process (a floor for clients that hash what they download).
 */
export async function deterministicObject(
  dir: string,
  name: string,
  mib: number,
  seed: number,
): Promise<{ file: string; digest: string; hashMs: number }> {
  const file = join(dir, name)
  await writeDeterministicFile(file, mib, seed)
  const t0 = performance.now()
  const digest = await fileDigest(file)
  return { file, digest, hashMs: performance.now() - t0 }
}

/** How many body requests a `server-child.js file` origin has served. */
export async function originCount(url: string): Promise<number> {
  const res = await request(`${url}/_count`)
  return Number(await res.body.text())
}
