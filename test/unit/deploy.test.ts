// test/unit/deploy.test.ts
// The Dockerfile and the deploy/ examples, linted for what the README promises: a multi-stage
// build on a slim Node base, a non-root user, the cache on a volume, a health check on
// /_cachemir/health, readiness on /_cachemir/ready, and only settings the mirror knows.
// (A real image build needs a container daemon, which tests do not have.)

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ENV_VARS } from '../../src/config.js'
import { ROOT } from '../helpers/proxy.js'

const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8')
const KNOWN = new Set<string>([...Object.values(ENV_VARS), 'CACHEMIR_SERVER'])

/** The Dockerfile's instructions, continuation lines joined and comments dropped. */
function instructions(text: string): string[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
}

test('the Dockerfile: multi-stage on a slim Node base, non-root, cache on a volume, health check, env-only configuration', () => {
  const lines = instructions(read('Dockerfile'))
  const from = lines.filter((l) => l.startsWith('FROM '))
  assert.ok(from.length >= 2, 'multi-stage')
  for (const f of from) assert.match(f, /^FROM node:(20|22)[\w.-]*-slim\b/, f)
  const users = lines.filter((l) => l.startsWith('USER '))
  assert.equal(users.length, 1)
  assert.doesNotMatch(users[0] as string, /^USER (root|0)\b/)
  // The USER comes after the last FROM: the running stage is the unprivileged one.
  assert.ok(lines.lastIndexOf(users[0] as string) > lines.lastIndexOf(from[from.length - 1] as string))
  const volume = lines.find((l) => l.startsWith('VOLUME '))
  assert.match(volume ?? '', /\/var\/cache\/cachemir/)
  assert.match(lines.find((l) => l.startsWith('ENV ')) ?? '', /CACHEMIR_CACHE_DIR=\/var\/cache\/cachemir/)
  assert.match(lines.find((l) => l.startsWith('HEALTHCHECK ')) ?? '', /\/_cachemir\/health/)
  assert.match(lines.find((l) => l.startsWith('ENTRYPOINT ')) ?? '', /dist\/src\/cli\.js/)
  assert.ok(!lines.some((l) => /--config|ADD /.test(l)), 'configured by environment variables, no config file baked in')
  // Every file the build copies from the context exists.
  for (const l of lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
    for (const src of l.split(/\s+/).slice(1, -1)) assert.ok(existsSync(join(ROOT, src)), `COPY source ${src}`)
  }
})

test('the Kubernetes sidecar and the systemd unit use the probes and settings the mirror has', () => {
  const k8s = read('deploy/kubernetes/sidecar.yaml')
  assert.match(k8s, /readinessProbe:\s*\n\s*httpGet: \{ path: \/_cachemir\/ready/)
  assert.match(k8s, /livenessProbe:\s*\n\s*httpGet: \{ path: \/_cachemir\/health/)
  assert.match(k8s, /emptyDir: \{\}|persistentVolumeClaim:/)
  assert.match(k8s, /mountPath: \/var\/cache\/cachemir/)
  const unit = read('deploy/systemd/cachemir.service')
  assert.match(unit, /^ExecStart=.*cachemir serve$/m)
  assert.match(unit, /^User=(?!root)\w+$/m)
  for (const text of [k8s, unit, read('Dockerfile')]) {
    for (const name of text.match(/CACHEMIR_[A-Z_]+/g) ?? []) assert.ok(KNOWN.has(name), `${name} is a setting the mirror reads`)
  }
})
