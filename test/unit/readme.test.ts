// test/unit/readme.test.ts
// The README's option table must list exactly the settings the code reads, with the right names.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { ENV_VARS, resolveConfig } from '../../src/config.js'

const README = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'README.md'), 'utf8')

const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

test('the README option table lists every flag and its environment variable, and nothing else', () => {
  const rows = README.split('\n').filter((line) => /^\| `--[a-z-]+/.test(line))
  const documented = rows.map((row) => {
    const cells = row.split('|').map((c) => c.trim())
    return { flag: /`(--[a-z-]+)/.exec(cells[1] ?? '')?.[1], env: /`(CACHEMIR_[A-Z_]+)`/.exec(cells[2] ?? '')?.[1] }
  })
  const expected = Object.entries(ENV_VARS).map(([key, env]) => ({ flag: `--${kebab(key)}`, env }))
  assert.deepEqual(
    documented.sort((a, b) => String(a.flag).localeCompare(String(b.flag))),
    expected.sort((a, b) => a.flag.localeCompare(b.flag)),
  )
})

test('the README config-file example is accepted by resolveConfig', (t) => {
  const block = /## Config file[\s\S]*?```json\n([\s\S]*?)```/.exec(README)?.[1]
  assert.ok(block !== undefined, 'README has a JSON config example')
  const dir = mkdtempSync(join(tmpdir(), 'cachemir-readme-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'cachemir.json')
  writeFileSync(file, block)
  const config = resolveConfig({ config: file }, {})
  assert.deepEqual(config.routes.map((r) => r.prefix).sort(), ['/alpine/', '/debian/', '/files/'])
  assert.equal(config.routes.find((r) => r.prefix === '/debian/')?.rules.length, 3)
  assert.equal(config.maxDiskBytes, 200 * 1024 ** 3)
})

test('the README error table lists exactly the codes of src/errors.ts, and each is raised somewhere in src/', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
  const errorsSource = readFileSync(join(root, 'src', 'errors.ts'), 'utf8')
  const classes = [...errorsSource.matchAll(/export class (\w+) extends CachemirError \{[\s\S]*?readonly code = '(CACHEMIR_[A-Z_]+)'/g)]
  const codes = classes.map((m) => m[2] as string).sort()
  const documented = README.split('\n')
    .map((line) => /^\| `(CACHEMIR_[A-Z_]+)` \|/.exec(line)?.[1])
    .filter((code) => code !== undefined)
    .sort()
  assert.deepEqual(documented, codes)
  const sources = readdirRecursive(join(root, 'src'))
    .filter((file) => file.endsWith('.ts') && !file.endsWith('errors.ts'))
    .map((file) => readFileSync(file, 'utf8'))
    .join('\n')
  for (const m of classes) assert.match(sources, new RegExp(`new ${m[1] as string}\\(`), `${m[2] as string} is never raised`)
})

function readdirRecursive(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? readdirRecursive(join(dir, e.name)) : [join(dir, e.name)],
  )
}
