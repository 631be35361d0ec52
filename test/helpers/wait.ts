// test/helpers/wait.ts
// Bounded waits for tests that prove ordering rather than timing: gates, timeouts, polling, and
// waiting for a mirror's fills to finish.

import { setTimeout as sleep } from 'node:timers/promises'
import type { TestContext } from 'node:test'
import type { Proxy } from './proxy.js'

/** Upper bound for one wait on the mirror; only reached when the mirror misbehaves. */
export const WAIT_MS = 10_000

/** The same bound for files whose every wait involves many large clients or a child process. */
export const LONG_WAIT_MS = 15_000

export interface Gate {
  readonly promise: Promise<void>
  open(): void
}

/** A promise the test resolves; opened again by t.after so no origin handler is left waiting. */
export function gate(t: TestContext): Gate {
  let open!: () => void
  const promise = new Promise<void>((resolve) => (open = resolve))
  t.after(() => open())
  return { promise, open: () => open() }
}

/** Rejects when `promise` has not settled within `ms`; the timer is always cleared. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls `cond` (sync or async) every 10 ms until it is true, failing after `ms` (WAIT_MS, 10 s, unless given). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const met = cond()
    if (met === true || (met !== false && (await met))) return
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await sleep(10)
  }
}

/** Waits until no fill is running (WAIT_MS at most), so the next request finds the last object committed. */
export async function waitForFills(proxy: Pick<Proxy, 'mirror'>): Promise<void> {
  await until(() => proxy.mirror.fills.size === 0, 'no fill is running')
}
