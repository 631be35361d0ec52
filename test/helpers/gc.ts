// test/helpers/gc.ts
// A full garbage collection on demand, for tests that sample memory (`node --test` does not pass --expose-gc).

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

let gc: (() => void) | undefined

/** Runs a full garbage collection, exposing gc() at runtime as --expose-gc would (once, on the first call). */
export function collectGarbage(): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
}
