import type { Event, Result } from '@tapio/events';

/** Feeds events in order through an engine and collects every result, in order. */
export function replay(events: Iterable<Event>, engine: { process(event: Event): Result[] }): Result[] {
  const results: Result[] = [];
  for (const event of events) results.push(...engine.process(event));
  return results;
}
