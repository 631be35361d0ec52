// src/respond/read-sizes.ts
// How much of a body one read takes, for cached bodies and for readers behind a fill: measured
// choices, kept in one place.

/**
 * Reads of a cached body: 1 MiB, like a plain file server tuned for throughput (fs's 64 KiB
 * default costs 16 thread-pool hops per MiB; 256 KiB measured 0.8x of such a server in bench
 * scenario 3, 1 MiB about 1.0x). A stalled client pins about twice this (the stream's read-ahead
 * and the chunk queued on its socket) until it is cut after the client idle time.
 */
export const READ_HIGH_WATER_MARK = 1024 * 1024

/**
 * How much a reader that has fallen behind a fill takes from the temp file per read. Small, because
 * a herd has many readers at once (bench scenario 5: 100 readers peaked at 158 MiB RSS with 256 KiB
 * reads, 144 MiB with 64 KiB); readers that keep up take the fill's chunks from memory instead.
 */
export const READ_CHUNK_BYTES = 64 * 1024
