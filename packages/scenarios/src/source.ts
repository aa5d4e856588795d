import type { Event } from '@tapio/events';
import type { FleetOptions } from './entities';
import { generateScenario, resolveScenarioNames } from './generate';
import { NoiseGenerator } from './noise';
import { Rng, deriveSeed } from './prng';
import type { ExpectedDetection } from './types';

export interface EventSourceOptions {
  seed: number;
  startMs: number;
  mix: {
    scenarios: readonly string[] | 'all';
    /** Long-run share of noise among the emitted events, in (0, 1]; 1 emits noise only. */
    noiseRatio: number;
  };
  /** Mean event-time gap between noise events. Default 10 ms (100 noise events per second). */
  noiseIntervalMs?: number;
  /** Expectations kept until read; older ones beyond this are dropped and counted. Default 10 000. */
  maxPendingExpected?: number;
  fleet?: FleetOptions;
}

export interface EventSource {
  /** The next event, in timestamp order. Never ends. */
  next(): Event;
  /** Expectations whose trigger event has been emitted since the previous call; clears them. */
  takeExpected(): ExpectedDetection[];
  /** Events emitted so far. */
  readonly emitted: number;
  /** Scenario instances started so far. */
  readonly instances: number;
  /** Expectations dropped because nobody read them in time (see maxPendingExpected). */
  readonly droppedExpected: number;
}

/**
 * An endless, deterministic stream for the collector: noise at a Poisson rate in event time, and
 * scenario instances (round robin over the names) started at the rate that yields `noiseRatio`.
 * Memory is bounded: the pending events of running instances, the noise generator's per-key state
 * (bounded by the fleet) and at most `maxPendingExpected` expectations.
 */
export function createEventSource(options: EventSourceOptions): EventSource {
  return new ScenarioEventSource(options);
}

interface Pending {
  event: Event;
  seq: number;
}

class ScenarioEventSource implements EventSource {
  emitted = 0;
  instances = 0;
  droppedExpected = 0;
  private readonly names: string[];
  private readonly noise: NoiseGenerator;
  private readonly rng: Rng;
  private readonly noiseIntervalMs: number;
  /** Event-time gap between instance starts; Infinity when noiseRatio is 1. */
  private readonly instanceIntervalMs: number;
  private readonly maxPendingExpected: number;
  private nextNoiseAt: number;
  private nextInstanceAt: number;
  private seq = 0;
  /** Min-heap on (timestamp, seq) of the events of started instances. */
  private readonly heap: Pending[] = [];
  /** Expectations of started instances, by trigger id, until the trigger is emitted. */
  private readonly awaiting = new Map<string, ExpectedDetection>();
  private ready: ExpectedDetection[] = [];

  constructor(private readonly options: EventSourceOptions) {
    const ratio = options.mix.noiseRatio;
    if (!(ratio > 0 && ratio <= 1)) throw new RangeError(`mix.noiseRatio must lie in (0, 1], got ${ratio}`);
    this.noiseIntervalMs = options.noiseIntervalMs ?? 10;
    if (!(this.noiseIntervalMs > 0)) {
      throw new RangeError(`noiseIntervalMs must be positive, got ${this.noiseIntervalMs}`);
    }
    this.maxPendingExpected = options.maxPendingExpected ?? 10_000;
    this.names = resolveScenarioNames(options.mix.scenarios);
    this.noise = new NoiseGenerator(
      options.fleet === undefined ? { seed: options.seed } : { seed: options.seed, fleet: options.fleet },
    );
    this.rng = new Rng(deriveSeed(options.seed, 'source'));
    // Scenario events per noise event = (1 - r) / r; one instance carries `meanEvents` of them.
    const sizes = this.names.map((name) => generateScenario(name, { seed: options.seed, startMs: 0 }).events.length);
    const meanEvents = sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length);
    this.instanceIntervalMs =
      ratio === 1 || this.names.length === 0
        ? Number.POSITIVE_INFINITY
        : (meanEvents * this.noiseIntervalMs * ratio) / (1 - ratio);
    this.nextNoiseAt = options.startMs;
    this.nextInstanceAt = options.startMs + (Number.isFinite(this.instanceIntervalMs) ? 0 : Infinity);
  }

  next(): Event {
    for (;;) {
      const head = this.heap[0];
      const candidate = Math.min(this.nextNoiseAt, head === undefined ? Infinity : head.event.timestamp);
      if (this.nextInstanceAt <= candidate) {
        this.startInstance();
        continue;
      }
      let event: Event;
      if (head !== undefined && head.event.timestamp <= this.nextNoiseAt) {
        event = this.pop();
        const detection = this.awaiting.get(event.id);
        if (detection !== undefined) {
          this.awaiting.delete(event.id);
          this.ready.push(detection);
          if (this.ready.length > this.maxPendingExpected) {
            this.ready.shift();
            this.droppedExpected++;
          }
        }
      } else {
        event = this.noise.at(this.nextNoiseAt);
        this.nextNoiseAt += Math.round(-Math.log(1 - this.rng.next()) * this.noiseIntervalMs);
      }
      this.emitted++;
      return event;
    }
  }

  takeExpected(): ExpectedDetection[] {
    const out = this.ready;
    this.ready = [];
    return out;
  }

  private startInstance(): void {
    const name = this.names[this.instances % this.names.length] ?? '';
    const scenario = generateScenario(name, {
      seed: this.options.seed,
      startMs: Math.round(this.nextInstanceAt),
      instance: this.instances,
    });
    this.instances++;
    for (const event of scenario.events) this.push({ event, seq: this.seq++ });
    for (const d of scenario.expected) this.awaiting.set(d.triggerEventId, d);
    this.nextInstanceAt += this.instanceIntervalMs * this.rng.float(0.5, 1.5);
  }

  private less(a: Pending, b: Pending): boolean {
    return a.event.timestamp < b.event.timestamp || (a.event.timestamp === b.event.timestamp && a.seq < b.seq);
  }

  private push(item: Pending): void {
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Pending;
      if (!this.less(item, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = item;
  }

  private pop(): Event {
    const heap = this.heap;
    const top = heap[0] as Pending;
    const last = heap.pop() as Pending;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let best = last;
        const left = heap[l];
        const right = heap[r];
        if (left !== undefined && this.less(left, best)) {
          m = l;
          best = left;
        }
        if (right !== undefined && this.less(right, best)) m = r;
        if (m === i) break;
        heap[i] = heap[m] as Pending;
        i = m;
      }
      heap[i] = last;
    }
    return top.event;
  }
}
