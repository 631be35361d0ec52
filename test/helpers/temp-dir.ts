// test/helpers/temp-dir.ts
// A fresh temp directory per test, removed again by t.after.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'

/**
 * t.after hooks run in the order they were added, so this removal can run before a later hook has
 * stopped a child process that still writes into the dir: retry, and never throw (a throwing hook
 * would skip the hooks after it, such as that child's kill). A dir left behind is reported.
 */
export async function makeTempDir(t: TestContext, prefix = 'cachemir-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.after(async () => {
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }).catch((err: unknown) =>
      t.diagnostic(`temp dir ${dir} not removed: ${String(err)}`),
    )
  })
  return dir
}
