// test/helpers/sizes.ts
// Byte units for the body sizes and limits tests use.

export const KiB = 1024
export const MiB = 1024 * 1024
