/**
 * kafkajs 2.2.4's RequestQueue re-arms a "check pending requests" timer after every check, even with
 * nothing pending; unthrottled, its delay is `-1 - Date.now()`, so Node 24+ warns
 * (TimeoutNegativeWarning) in every service, and the timer fires every 1 ms for the life of each
 * broker connection (tulios/kafkajs#1751 and #1704, open; the fix below is the one proposed there).
 * With nothing pending and no throttle in force, nothing needs a check: fulfilled, timed-out and new
 * requests all check the queue themselves. kafkajs is pinned, and a test checks the patch applies.
 */
import { createRequire } from 'node:module';

interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: unknown;
  scheduleCheckPendingRequests: (this: RequestQueueLike) => void;
}

const requireHere = createRequire(__filename);

/** The kafkajs RequestQueue class (private module of the pinned kafkajs). */
export const RequestQueue = requireHere('kafkajs/src/network/requestQueue') as {
  prototype: RequestQueueLike;
};

const original = RequestQueue.prototype.scheduleCheckPendingRequests;

export function patchedScheduleCheckPendingRequests(this: RequestQueueLike): void {
  if (this.pending.length === 0 && this.throttledUntil - Date.now() <= 0) return;
  original.call(this);
}

RequestQueue.prototype.scheduleCheckPendingRequests = patchedScheduleCheckPendingRequests;
