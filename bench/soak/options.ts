// bench/soak/options.ts
// The soak's command line: flags, defaults and their checks.

import { parseArgs } from 'node:util'
import { parseSize } from '../../src/util/units.js'

export interface Options {
  readonly seconds: number
  readonly clients: number
  readonly objects: number
  readonly seed: number
  readonly maxDisk: string
  readonly maxMemory: string
  /** Copy of the mirror's stdout and stderr, for diagnosis. */
  readonly mirrorLog: string | undefined
}

export const USAGE = `usage: node dist/bench/soak/run.js [--seconds 60] [--clients 32] [--objects 200] [--seed 1]
                                  [--max-disk 32MiB] [--max-memory 8MiB] [--mirror-log FILE]`

/**
 * Parses and checks the soak's flags; `'help'` for `--help`.
 *
 * @throws Error naming the flag, what was expected and what was received, for a bad value or an
 *   unknown flag.
 */
export function readOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      seconds: { type: 'string', default: '60' },
      clients: { type: 'string', default: '32' },
      objects: { type: 'string', default: '200' },
      seed: { type: 'string', default: '1' },
      'max-disk': { type: 'string', default: '32MiB' },
      'max-memory': { type: 'string', default: '8MiB' },
      'mirror-log': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) return 'help'
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text)
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`)
    return n
  }
  const size = (name: string, text: string): string => {
    if (parseSize(text) === undefined) throw new Error(`--${name}: expected a size like "32MiB", got ${JSON.stringify(text)}`)
    return text
  }
  return {
    seconds: int('seconds', values.seconds, 1, 86_400),
    clients: int('clients', values.clients, 1, 512),
    // Every body lives in the bench process (about 0.4 MiB each on average).
    objects: int('objects', values.objects, 2, 1000),
    seed: int('seed', values.seed, 0, 2 ** 31 - 1),
    maxDisk: size('max-disk', values['max-disk']),
    maxMemory: size('max-memory', values['max-memory']),
    mirrorLog: values['mirror-log'],
  }
}
