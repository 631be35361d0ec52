// test/unit/fill-readers.test.ts
// The readers that follow a fill (upstream/fill-readers.ts): progress wake-ups, and the wait for
// every reader to pass a position, which cuts off a reader that stalls.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FillReaders } from '../../src/upstream/fill-readers.js'

const NEVER = new AbortController().signal

test('a reference is held from acquire to release', () => {
  const readers = new FillReaders()
  const a = readers.acquire()
  const b = readers.acquire()
  assert.equal(readers.hasReaders, true)
  readers.release(a)
  assert.equal(readers.hasReaders, true)
  readers.release(b)
  assert.equal(readers.hasReaders, false)
})

test('notify wakes every waiter once, and only those waiting at the time', async () => {
  const readers = new FillReaders()
  let woken = 0
  const waits = [readers.waitForProgress(), readers.waitForProgress()].map((p) => p.then(() => woken++))
  readers.notify()
  await Promise.all(waits)
  assert.equal(woken, 2)
  let late = false
  void readers.waitForProgress().then(() => (late = true))
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(late, false, 'a wait that started after notify waits for the next one')
})

test('the wait for readers past a position ends when the last one moves past it', async () => {
  const readers = new FillReaders()
  const fast = readers.acquire()
  const slow = readers.acquire()
  fast.pos = 10
  let done = false
  const wait = readers.waitForAllPast(10, 10_000, NEVER).then(() => (done = true))
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(done, false, 'one reader is still behind')
  slow.pos = 10
  readers.moved()
  await wait
  assert.equal(done, true)
})

test('a detached or released reader is not waited for', async () => {
  const readers = new FillReaders()
  const detached = readers.acquire()
  const released = readers.acquire()
  readers.detach(detached)
  readers.release(released)
  assert.equal(detached.pos, Number.POSITIVE_INFINITY)
  await readers.waitForAllPast(1_000, 10_000, NEVER)
})

test('a reader still behind after the idle time is cut off, and not waited for again', async () => {
  const readers = new FillReaders()
  const stalled = readers.acquire()
  let cuts = 0
  stalled.cut = () => cuts++
  const started = Date.now()
  await readers.waitForAllPast(5, 50, NEVER)
  assert.ok(Date.now() - started >= 40, 'it waited about the idle time first')
  assert.equal(cuts, 1)
  await readers.waitForAllPast(10, 50, NEVER)
  assert.equal(cuts, 1, 'a cut reader is no longer followed')
  assert.equal(readers.hasReaders, true, 'it keeps its reference until it releases it')
})

test('an aborted fill waits for nobody', async () => {
  const readers = new FillReaders()
  readers.acquire()
  const abort = new AbortController()
  abort.abort()
  await readers.waitForAllPast(5, 10_000, abort.signal)
})
