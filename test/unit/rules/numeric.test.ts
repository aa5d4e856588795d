import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addPoint,
  confidenceOf,
  emptySums,
  pearson,
  pearsonOf,
  removePoint,
  roundHalfAwayFromZero,
  slope,
  slopeOf,
  sumsOf,
} from '@tapio/rules';
import { T0, at } from '../../helpers/events-builder';

const near = (actual: number, expected: number, tol = 1e-9): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${actual} is not ${expected}`);

test('slope is per second over epoch-millisecond timestamps', () => {
  near(
    slope([
      [T0, 0],
      [T0 + 10_000, 100],
    ]),
    10,
  );
  near(
    slope([
      [at(0), 1],
      [at(1), 2],
      [at(2), 3],
    ]),
    1,
  );
  near(
    slope([
      [at(0), 5],
      [at(60), 5],
    ]),
    0,
  );
});

test('slope and r match an independent computation (x = 0..4 s, y = 2,4,5,4,5: slope 0.6, r 0.7746)', () => {
  const points = [2, 4, 5, 4, 5].map((y, i) => [at(i), y] as const);
  near(slope(points), 0.6);
  near(pearson(points), 0.7745966692414834);
});

test('r is 1 / -1 on perfect lines, NaN without spread or with one point', () => {
  near(
    pearson([
      [at(0), 1e9],
      [at(60), 1.1e9],
      [at(120), 1.2e9],
    ]),
    1,
  );
  near(
    pearson([
      [at(0), 3],
      [at(60), 2],
      [at(120), 1],
    ]),
    -1,
  );
  assert.ok(
    Number.isNaN(
      pearson([
        [at(0), 7e8],
        [at(60), 7e8],
        [at(120), 7e8],
      ]),
    ),
  );
  assert.ok(Number.isNaN(pearson([[at(0), 1]])));
  assert.ok(
    Number.isNaN(
      slope([
        [at(5), 1],
        [at(5), 2],
      ]),
    ),
  );
});

test('a short window at epoch-scale timestamps keeps its precision (sums are taken from an origin)', () => {
  // 3 samples 10 s apart: raw epoch seconds squared would cancel to garbage.
  near(
    slope([
      [at(0), 700],
      [at(10), 710],
      [at(20), 720],
    ]),
    1,
  );
});

test('removing points slides the sums: same slope and r as sums built from scratch', () => {
  const s = emptySums(at(0), 0);
  const points = [3, 1, 4, 1, 5, 9, 2, 6].map((y, i) => [at(i * 30), y * 1e8] as const);
  for (const [t, y] of points) addPoint(s, t, y);
  removePoint(s, points[0]![0], points[0]![1]);
  removePoint(s, points[1]![0], points[1]![1]);
  const fresh = sumsOf(points.slice(2));
  near(slopeOf(s), slopeOf(fresh), 1e-6);
  near(pearsonOf(s), pearsonOf(fresh), 1e-9);
  assert.equal(s.n, 6);
});

test('rounding is half away from zero on the decimal value', () => {
  assert.equal(roundHalfAwayFromZero(0.72505, 4), 0.7251);
  assert.equal(roundHalfAwayFromZero(0.12344, 4), 0.1234);
  assert.equal(roundHalfAwayFromZero(-0.00005, 4), -0.0001);
  assert.equal(roundHalfAwayFromZero(0.6 + 0.02 * 5, 4), 0.7);
  assert.equal(roundHalfAwayFromZero(1.00005, 4), 1.0001);
});

test('confidence = min(0.99, base + step * (n - min)), 4 decimals', () => {
  assert.equal(confidenceOf({ base: 0.6, step: 0.02, min: 10 }, 10), 0.6);
  assert.equal(confidenceOf({ base: 0.6, step: 0.02, min: 10 }, 15), 0.7);
  assert.equal(confidenceOf({ base: 0.7, step: 0.05, min: 2 }, 5), 0.85);
  assert.equal(confidenceOf({ base: 0.6, step: 0.04, min: 5 }, 100), 0.99);
  assert.equal(confidenceOf({ base: 0.9, step: 0, min: 1 }, 1), 0.9);
  assert.equal(confidenceOf({ base: 0.12345, step: 0, min: 1 }, 1), 0.1235);
});
