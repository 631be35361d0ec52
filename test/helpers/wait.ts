// test/helpers/wait.ts
// Bounded waits for tests that prove ordering rather than timing: gates, timeouts and polling.

import { setTimeout as sleep } from 'node:timers/promises'
import type { TestContext } from 'node:test'

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

/** Polls `cond` (sync or async) every 10 ms until it is true, failing after `ms` (10 s unless given). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const met = cond()
    if (met === true || (met !== false && (await met))) return
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await sleep(10)
  }
}
