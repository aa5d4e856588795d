import type { Event } from '@tapio/events';
import { Rng, deriveSeed } from '@tapio/scenarios';

export interface Redelivered {
  /** The stream with the redeliveries in it. */
  events: Event[];
  /** How many events were delivered a second time. */
  redelivered: number;
}

/**
 * The events with about `share` of them delivered a second time, 1 to 4 records after the first (a
 * router that crashes between produce and commit sends the uncommitted records again). A copy, not
 * the same object: the engines must recognise a redelivery by its contents, as they would after a
 * second decode.
 */
export function withRedeliveries(events: readonly Event[], seed: number, share = 0.03): Redelivered {
  const rng = new Rng(deriveSeed(seed, 'redeliver'));
  const due = new Map<number, Event[]>();
  const out: Event[] = [];
  let redelivered = 0;
  events.forEach((event, i) => {
    out.push(event);
    if (rng.chance(share)) {
      const at = i + rng.int(1, 4);
      const list = due.get(at) ?? [];
      list.push(structuredClone(event));
      due.set(at, list);
      redelivered += 1;
    }
    for (const copy of due.get(i) ?? []) out.push(copy);
    due.delete(i);
  });
  // Those due past the end come after the last event.
  for (const list of due.values()) out.push(...list);
  return { events: out, redelivered };
}
