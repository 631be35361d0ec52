// src/integrity/find-near.ts
// Finds a needle in a stream of chunks and shows each occurrence with the bytes around it, holding
// only a chunk plus the surroundings in memory, so a multi-megabyte index is searched in bounded
// memory and never parsed or buffered whole.

/** How many bytes around an occurrence `inspect` is shown, at most, on each side. */
export interface Around {
  readonly before: number
  readonly after: number
}

/**
 * Calls `inspect(window, at)` for each occurrence of `needle` in the concatenated `chunks`, in
 * order, with up to `around.before` bytes before it and `around.after` bytes after its end
 * (fewer only at the start and the end of the stream); `at` is where the needle starts in
 * `window`. Returns the first value `inspect` returns that is not undefined, and stops reading
 * there; undefined when no occurrence gave one. Memory: one chunk plus both surroundings.
 */
export async function findNear<T>(
  chunks: AsyncIterable<Buffer>,
  needle: Buffer,
  around: Around,
  inspect: (window: Buffer, at: number) => T | undefined,
): Promise<T | undefined> {
  let buf: Buffer = Buffer.alloc(0)
  // Where the next search starts in buf: everything before it has been inspected.
  let from = 0
  const scan = (final: boolean): T | undefined => {
    for (;;) {
      const at = buf.indexOf(needle, from)
      if (at < 0) {
        // An occurrence cut by the chunk's end starts no earlier than this.
        from = Math.max(from, buf.length - needle.length + 1)
        return undefined
      }
      const end = at + needle.length + around.after
      // Not enough bytes after it yet: look at it again once more have come.
      if (end > buf.length && !final) {
        from = at
        return undefined
      }
      const start = Math.max(0, at - around.before)
      const found = inspect(buf.subarray(start, Math.min(end, buf.length)), at - start)
      if (found !== undefined) return found
      from = at + 1
    }
  }
  for await (const chunk of chunks) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    const found = scan(false)
    if (found !== undefined) return found
    // Keep what a later occurrence may need before it; drop the rest (the next concat copies it).
    const keep = Math.max(0, from - around.before)
    buf = buf.subarray(keep)
    from -= keep
  }
  return scan(true)
}
