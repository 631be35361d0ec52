// What a scenario returns to the runner.
import type { Spread } from './util.js'

export interface Options { quick: boolean; rounds: number }

/** One row of the Markdown table. */
export interface Row {
  scenario: string
  reference: string
  metric: string
  cachemir: string
  referenceFigure: string
  ratio: string
  target: string
  met: 'yes' | 'no' | 'n/a'
}

export interface ScenarioResult {
  name: string
  rows: Row[]
  /** Raw per-round figures, for latest.json. */
  data: Record<string, Spread | number | string | boolean | null | undefined | unknown>
  notes: string[]
}

export interface Scenario {
  name: string
  title: string
  run(opts: Options): Promise<ScenarioResult>
}
