/** The stream and batch size of the offline engine benchmarks (bench/engine.ts, bench/engine-ab.ts). */
import type { StreamOptions } from '@tapio/scenarios';

/** Records per decoded batch, as the V2 service gets them from a fetch. */
export const ENGINE_BATCH = 500;

/** Full: 303 373 events, 120 expected detections; quick: a tenth of the noise, 2 incidents per scenario. */
export function engineStream(quick: boolean): StreamOptions & { incidentsPerScenario: number; noiseEvents: number } {
  return {
    seed: 20250115,
    startMs: Date.UTC(2025, 0, 15, 9, 0, 0),
    scenarios: 'all',
    incidentsPerScenario: quick ? 2 : 10,
    noiseEvents: quick ? 30_000 : 300_000,
    outOfOrderMs: 5_000,
    lateShare: 0.001,
  };
}
