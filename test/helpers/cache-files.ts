// test/helpers/cache-files.ts
// Lists the files a mirror keeps under its cache dir (<dir>/cachemir-v1/objects/<bucket>/…).

import type { Dirent } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
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
