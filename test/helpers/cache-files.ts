// test/helpers/cache-files.ts
// Lists the files a mirror keeps under its cache dir (<dir>/cachemir-v1/objects/<bucket>/…), and
// damages a stored body the way a rotting disk would.

import type { Dirent } from 'node:fs'
import assert from 'node:assert/strict'
import { open, readdir, stat } from 'node:fs/promises'
import { basename, join, relative } from 'node:path'
import { errorCode } from '../../src/errors.js'

export interface CacheFile {
  /** Base name, e.g. `<hash>.meta`, `<hash>.<id>.<bytes>.body` or `.tmp-…`. */
  readonly name: string
  readonly path: string
  readonly size: number
}

/** Every file under dir, recursively, as full paths; a directory that is missing (or goes away meanwhile) has none. */
export async function filesUnder(dir: string): Promise<string[]> {
  let entries: Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    const code = errorCode(err)
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    throw err
  }
  const files: string[] = []
  for (const d of entries) {
    const path = join(dir, d.name)
    if (d.isDirectory()) files.push(...(await filesUnder(path)))
    else if (d.isFile()) files.push(path)
  }
  return files
}

/** Every file under dir, as paths relative to dir, sorted. */
export async function listRelative(dir: string): Promise<string[]> {
  return (await filesUnder(dir)).map((p) => relative(dir, p)).sort()
}

/** Every file under dir with its base name, path and size; a file removed while listing is left out. */
export async function cacheFiles(dir: string): Promise<CacheFile[]> {
  const files: CacheFile[] = []
  for (const path of await filesUnder(dir)) {
    const size = (await stat(path).catch(() => undefined))?.size
    if (size !== undefined) files.push({ name: basename(path), path, size })
  }
  return files
}

/** The temp files under dir (`.tmp-…`: bodies being filled, metas being written). */
export async function tempFilesIn(dir: string): Promise<CacheFile[]> {
  return (await cacheFiles(dir)).filter((f) => f.name.startsWith('.tmp-'))
}

/** The one stored body file under dir. */
export async function storedBodyFile(dir: string): Promise<string> {
  const bodies = (await cacheFiles(dir)).filter((f) => f.name.endsWith('.body') && !f.name.startsWith('.tmp-'))
  assert.equal(bodies.length, 1, `one stored body: ${bodies.map((f) => f.name).join(', ')}`)
  return (bodies[0] as { path: string }).path
}

/** Inverts `length` bytes in the middle of the file; its size stays the same. */
export async function flipMiddle(path: string, length: number): Promise<void> {
  const fh = await open(path, 'r+')
  try {
    const { size } = await fh.stat()
    const at = Math.floor(size / 2 - length / 2)
    const buf = Buffer.alloc(length)
    await fh.read(buf, 0, length, at)
    for (let i = 0; i < length; i++) buf[i] = (buf[i] as number) ^ 0xff
    await fh.write(buf, 0, length, at)
    assert.equal((await fh.stat()).size, size)
  } finally {
    await fh.close()
  }
}
