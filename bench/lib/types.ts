// What a scenario returns to the runner.

export interface Options {
  quick: boolean
  rounds: number
}

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
  data: Record<string, unknown>
  notes: string[]
}

export interface Scenario {
  name: string
  title: string
  run(opts: Options): Promise<ScenarioResult>
}
