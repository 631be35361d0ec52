// src/upstream/fill-readers.ts
// The clients that follow one fill: where each is in the body, waking them when the fill moves on,
// and, for a chunk that lives only in memory, waiting until each has taken it (or cutting it off).

/** Where one reader is in the body. */
export interface Cursor {
  pos: number
  /** Ends this reader's response early (set while it follows the body). */
  cut?: () => void
}

/**
 * The readers of one fill. A reader holds a reference from `acquire()` to `release()`; the fill
 * keeps its temp file open while any does. Readers move at their own pace: the fill waits for
 * them only through `waitForAllPast`, when it relays from memory.
 */
export class FillReaders {
  #count = 0
  readonly #cursors = new Set<Cursor>()
  #cursorWaiter: (() => void) | undefined
  #waiters: (() => void)[] = []

  /** Some reader still holds a reference. */
  get hasReaders(): boolean {
    return this.#count > 0
  }

  /** Registers a reader and returns its cursor. */
  acquire(): Cursor {
    this.#count++
    const cursor: Cursor = { pos: 0 }
    this.#cursors.add(cursor)
    return cursor
  }

  release(cursor: Cursor): void {
    this.#count--
    this.#cursors.delete(cursor)
    this.moved()
  }

  /** This reader will not read the body: never wait for it. */
  detach(cursor: Cursor): void {
    cursor.pos = Number.POSITIVE_INFINITY
    this.moved()
  }

  /** A reader's cursor advanced (or the fill was aborted): wakes `waitForAllPast`. */
  moved(): void {
    const wake = this.#cursorWaiter
    this.#cursorWaiter = undefined
    wake?.()
  }

  /** Resolves at the next `notify()`. */
  waitForProgress(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** The fill changed (more bytes, completion or failure): wakes every `waitForProgress`. */
  notify(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  /**
   * Resolves once every reader has taken the bytes below `pos` (or left), or at once when `signal`
   * is aborted. A reader still behind after `idleMs` is cut off (its connection closed before the
   * end), so one stalled client cannot freeze the others.
   */
  async waitForAllPast(pos: number, idleMs: number, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + idleMs
    for (;;) {
      const behind = [...this.#cursors].filter((cursor) => cursor.pos < pos)
      if (behind.length === 0 || signal.aborted) return
      const left = deadline - Date.now()
      if (left <= 0) {
        for (const cursor of behind) {
          this.#cursors.delete(cursor)
          cursor.cut?.()
        }
        return
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#cursorWaiter = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }
}
