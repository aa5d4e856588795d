import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker, parseHealthSnapshot } from '@tapio/routing';
import type { BreakerSettings, HealthSnapshot } from '@tapio/routing';

const settings: BreakerSettings = {
  mode: 'auto',
  windowSize: 5,
  minimumCalls: 100,
  failureRateThreshold: 0.1,
  slowCallRateThreshold: 0.5,
  slowCallMs: 100,
  openMs: 10_000,
  halfOpenTrials: 3,
};
const snap = (calls: number, errors = 0, slowCalls = 0, engine: 'v1' | 'v2' = 'v2'): HealthSnapshot => ({
  engine,
  instance: 'v2-a',
  at: 0,
  calls,
  errors,
  slowCalls,
  lag: 0,
});

test('closed → open on the failure rate, only with the minimum calls in the window', () => {
  const b = new CircuitBreaker(settings);
  b.record(snap(40, 20), 0);
  assert.equal(b.state(0), 'closed', '50% failures but only 40 calls');
  b.record(snap(40, 0), 1);
  assert.equal(b.state(1), 'closed', '80 calls');
  b.record(snap(40, 0), 2);
  assert.equal(b.state(2), 'open', '120 calls, 20/120 = 16.7% >= 10%');
  assert.match(b.status(2).reason ?? '', /failure rate/);
});

test('closed → open on the slow-call rate; V1 snapshots do not count; the window slides', () => {
  const b = new CircuitBreaker(settings);
  b.record(snap(1000, 999, 999, 'v1'), 0);
  assert.equal(b.state(0), 'closed');
  for (let i = 0; i < 5; i++) b.record(snap(100, 5, 10), i);
  assert.equal(b.state(5), 'closed');
  // Old good snapshots slide out; five bad ones fill the window.
  for (let i = 0; i < 4; i++) b.record(snap(100, 0, 60), 10 + i);
  assert.equal(b.state(20), 'open');
  assert.match(b.status(20).reason ?? '', /slow-call rate/);
});

test('open → half-open after openMs → closed after N good trials; a bad trial opens it again', () => {
  const b = new CircuitBreaker(settings);
  b.record(snap(200, 100), 1000);
  assert.equal(b.state(1000), 'open');
  b.record(snap(200, 0), 2000);
  assert.equal(b.state(10_999), 'open', 'snapshots while open do not close it');
  assert.equal(b.state(11_000), 'half-open');
  b.record(snap(10, 0), 11_100);
  b.record(snap(0, 0), 11_200); // no calls: proves nothing
  b.record(snap(10, 0), 11_300);
  assert.equal(b.state(11_400), 'half-open');
  b.record(snap(10, 0), 11_500);
  assert.equal(b.state(11_600), 'closed');

  b.record(snap(200, 100), 20_000);
  assert.equal(b.state(20_000), 'open');
  assert.equal(b.state(30_000), 'half-open');
  b.record(snap(10, 0), 30_100);
  b.record(snap(10, 5), 30_200);
  assert.equal(b.state(30_300), 'open', 'a bad trial reopens');
  assert.equal(b.state(40_199), 'open', 'for another openMs');
  assert.equal(b.state(40_200), 'half-open');
});

test('forced-open and disabled modes', () => {
  const forced = new CircuitBreaker({ ...settings, mode: 'forced-open' });
  forced.record(snap(1000, 0), 0);
  assert.equal(forced.state(1e9), 'open');
  const disabled = new CircuitBreaker({ ...settings, mode: 'disabled' });
  disabled.record(snap(1000, 1000), 0);
  assert.equal(disabled.state(0), 'closed');
  // Switching back to auto through configure.
  const b = new CircuitBreaker({ ...settings, mode: 'forced-open' });
  b.configure(settings);
  assert.equal(b.state(0), 'closed');
});

test('health snapshots are validated, naming the field', () => {
  const ok = { engine: 'v2', instance: 'x', at: 1, calls: 3, errors: 1, slowCalls: 0, lag: 7 };
  assert.deepEqual(parseHealthSnapshot(JSON.stringify(ok)), ok);
  assert.throws(() => parseHealthSnapshot(JSON.stringify({ ...ok, engine: 'v3' })), /engine/);
  assert.throws(() => parseHealthSnapshot(JSON.stringify({ ...ok, errors: 4 })), /calls/);
  assert.throws(() => parseHealthSnapshot('x'), /not valid JSON/);
});
