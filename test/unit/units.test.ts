// test/unit/units.test.ts
// parseSize, parseDuration and formatBytes: every accepted form, and the inputs they must refuse.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatBytes, parseDuration, parseSize } from '../../src/util/units.js'

test('parseSize reads plain bytes, decimal units, binary units and bare K/M/G/T', () => {
  const cases: [string, number][] = [
    ['0', 0],
    ['1234', 1234],
    ['100B', 100],
    ['100b', 100],
    ['1KB', 1000],
    ['1kb', 1000],
    ['2MB', 2_000_000],
    ['3GB', 3_000_000_000],
    ['1TB', 1e12],
    ['1KiB', 1024],
    ['1kib', 1024],
    ['256MiB', 268_435_456],
    ['10GiB', 10 * 1024 ** 3],
    ['1TiB', 1024 ** 4],
    ['1K', 1024],
    ['1k', 1024],
    ['2M', 2 * 1024 ** 2],
    ['1G', 1024 ** 3],
    ['1T', 1024 ** 4],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['1.5KB', 1500],
    ['512 MiB', 512 * 1024 ** 2],
    ['0.5B', 1],
    ['1.4B', 1],
    ['0.001KiB', 1],
  ]
  for (const [text, bytes] of cases) {
    assert.equal(parseSize(text), bytes, text)
  }
})

test('parseSize refuses anything that is not a non-negative size with a known unit', () => {
  const cases = [
    '',
    ' ',
    '-1',
    '-1KB',
    '10XB',
    'KB',
    'abc',
    '1.',
    '.5MB',
    '1e3',
    '0x10',
    'NaN',
    'Infinity',
    '1  MB',
    ' 1MB',
    '1MB ',
    '1,5MB',
    '1PiB',
    '99999999999TiB',
  ]
  for (const text of cases) {
    assert.equal(parseSize(text), undefined, JSON.stringify(text))
  }
})

test('parseDuration reads milliseconds, seconds, minutes, hours, days and plain seconds', () => {
  const cases: [string, number][] = [
    ['0', 0],
    ['30', 30_000],
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    ['1.5h', 5_400_000],
    ['0.5s', 500],
    ['10 m', 600_000],
    ['1.5', 1500],
    ['0.0004s', 0],
  ]
  for (const [text, ms] of cases) {
    assert.equal(parseDuration(text), ms, text)
  }
})

test('parseDuration refuses negative, unknown-unit and malformed durations', () => {
  const cases = ['', '-1', '-5m', '5x', '5mins', 'm', 'soon', '1e3', 'NaN', 'Infinity', ' 5m', '5m ', '1d1h', '999999999999d']
  for (const text of cases) {
    assert.equal(parseDuration(text), undefined, JSON.stringify(text))
  }
})

test('formatBytes picks the largest binary unit and at most two decimals', () => {
  const cases: [number, string][] = [
    [0, '0B'],
    [100, '100B'],
    [1023, '1023B'],
    [1024, '1KiB'],
    [1536, '1.5KiB'],
    [268_435_456, '256MiB'],
    [10 * 1024 ** 3, '10GiB'],
    [10 * 1000 ** 3, '9.31GiB'],
    [1024 ** 4, '1TiB'],
    [1024 ** 5, '1024TiB'],
    [1024 * 1024 - 1, '1MiB'],
  ]
  for (const [bytes, text] of cases) {
    assert.equal(formatBytes(bytes), text, String(bytes))
  }
})

test('formatBytes output parses back to the same size for whole units', () => {
  for (const bytes of [1, 1024, 1536, 268_435_456, 10 * 1024 ** 3]) {
    assert.equal(parseSize(formatBytes(bytes)), bytes)
  }
})
