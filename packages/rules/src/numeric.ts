/**
 * Numeric helpers shared by both engines, so that V1 and V2 compute thresholds the same way.
 */

/**
 * Absolute tolerance for comparing DERIVED quantities (means, ratios, slope, Pearson r, time to the
 * limit) against a threshold. Sums of doubles depend on the order of addition (ten samples of 0.8 sum
 * to 7.999999999999999), and V1 (scan) and V2 (running sums) add in different orders; without a
 * tolerance an exact-boundary case such as "mean >= 0.8" would flip. Raw attribute values read from one
 * event are compared exactly.
 */
export const EPSILON = 1e-9;

/** a >= b for derived quantities. */
export function atLeast(a: number, b: number): boolean {
  return a >= b - EPSILON;
}

/** a > b for derived quantities. */
export function above(a: number, b: number): boolean {
  return a > b + EPSILON;
}

/** a <= b for derived quantities. */
export function atMost(a: number, b: number): boolean {
  return a <= b + EPSILON;
}

/**
 * Rounds half away from zero on the decimal value. The product x * 10^d is first snapped to 15
 * significant digits, which removes binary noise (0.72505 * 1e4 is 7250.499999999999 in doubles, and
 * must round to 7251).
 */
export function roundHalfAwayFromZero(x: number, decimals: number): number {
  if (!Number.isFinite(x)) return x;
  const factor = 10 ** decimals;
  const scaled = Number((Math.abs(x) * factor).toPrecision(15));
  return (Math.sign(x) * Math.round(scaled)) / factor;
}

/**
 * Running least-squares sums over (x, y) pairs with x = (timestamp - originMs) / 1000 (seconds, as
 * RULES.md requires) and y = value - originY. Shifting both axes by an origin changes neither the slope
 * nor r, and keeps the sums small: raw epoch seconds squared (~3e18) would lose every digit of a 300 s
 * window to cancellation. Add and remove are exact inverses in exact arithmetic, so V2 can slide them.
 */
export interface LeastSquaresSums {
  originMs: number;
  originY: number;
  n: number;
  sx: number;
  sy: number;
  sxx: number;
  sxy: number;
  syy: number;
}

export function emptySums(originMs: number, originY: number): LeastSquaresSums {
  return { originMs, originY, n: 0, sx: 0, sy: 0, sxx: 0, sxy: 0, syy: 0 };
}

export function addPoint(s: LeastSquaresSums, timestampMs: number, value: number): void {
  const x = (timestampMs - s.originMs) / 1000;
  const y = value - s.originY;
  s.n += 1;
  s.sx += x;
  s.sy += y;
  s.sxx += x * x;
  s.sxy += x * y;
  s.syy += y * y;
}

export function removePoint(s: LeastSquaresSums, timestampMs: number, value: number): void {
  const x = (timestampMs - s.originMs) / 1000;
  const y = value - s.originY;
  s.n -= 1;
  s.sx -= x;
  s.sy -= y;
  s.sxx -= x * x;
  s.sxy -= x * y;
  s.syy -= y * y;
}

/** Least-squares slope in value units per second; NaN with fewer than 2 points or no spread in time. */
export function slopeOf(s: LeastSquaresSums): number {
  if (s.n < 2) return NaN;
  const sxx = s.n * s.sxx - s.sx * s.sx;
  if (!(sxx > 0)) return NaN;
  return (s.n * s.sxy - s.sx * s.sy) / sxx;
}

/** Pearson correlation coefficient; NaN when either variable has no spread (r is undefined then). */
export function pearsonOf(s: LeastSquaresSums): number {
  if (s.n < 2) return NaN;
  const sxx = s.n * s.sxx - s.sx * s.sx;
  const syy = s.n * s.syy - s.sy * s.sy;
  if (!(sxx > 0) || !(syy > 0)) return NaN;
  const r = (s.n * s.sxy - s.sx * s.sy) / Math.sqrt(sxx * syy);
  return Math.max(-1, Math.min(1, r));
}

/** Sums over [timestampMs, value] pairs, with the first pair as origin. */
export function sumsOf(points: ReadonlyArray<readonly [number, number]>): LeastSquaresSums {
  const first = points[0];
  const s = emptySums(first === undefined ? 0 : first[0], first === undefined ? 0 : first[1]);
  for (const [t, v] of points) addPoint(s, t, v);
  return s;
}

/** Least-squares slope (value units per second) over [timestampMs, value] pairs. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  return slopeOf(sumsOf(points));
}

/** Pearson r over [timestampMs, value] pairs. */
export function pearson(points: ReadonlyArray<readonly [number, number]>): number {
  return pearsonOf(sumsOf(points));
}
