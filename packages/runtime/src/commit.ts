/**
 * Offset commits off the batch path.
 *
 * kafkajs with `autoCommit: true` sends an OffsetCommit after every batch (whatever
 * `autoCommitInterval` says) and its fetcher starts the next fetch only when every batch of the last
 * one is done, commits included. A commit costs a round trip to the group coordinator, which waits
 * `group.coordinator.append.linger.ms` (5 ms by default) before writing it: with 12 partitions per
 * fetch that is most of a hop's latency (single-hop harness, 2 000 events/s: p50 ~60 ms with a
 * commit per batch, ~5 ms without).
 *
 * So consumers run with `autoCommit: false` and, once a batch's outputs are acknowledged, resolve
 * its offsets and call `resolved(payload)`: a commit of everything resolved goes out in the
 * background at most every `intervalMs`, never awaited by a batch. "Commit only after the results
 * are acknowledged" still holds: only resolved offsets are committed. The resolved offsets live in
 * kafkajs's offset manager, which is replaced at every group join, so a partition revoked from this
 * member is never committed by it afterwards. On a rebalance the resolved offsets are committed
 * before the rejoin (best effort); on stop, by `stop()` and by the batch that finishes last.
 */
import type { Consumer, EachBatchPayload } from '@tapio/kafka';
import type { Logger } from '@tapio/observability';

type Commit = EachBatchPayload['commitOffsetsIfNecessary'];
type Uncommitted = EachBatchPayload['uncommittedOffsets'];

export class BackgroundCommitter {
  private commit: Commit | undefined;
  private uncommitted: Uncommitted | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The commit in flight (commits are sent one at a time). */
  private inFlight: Promise<void> = Promise.resolve();
  /** The first commit comes one interval after the start, like the later ones. */
  private lastCommitAt = Date.now();
  private stopping = false;

  constructor(
    consumer: Consumer,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {
    // kafkajs commits nothing on a rebalance when autoCommit is off: commit what is resolved before
    // the rejoin (the request goes out ahead of the JoinGroup on the coordinator connection).
    consumer.on(consumer.events.REBALANCING, () => {
      void this.flush();
    });
  }

  /**
   * After `payload.resolveOffset(...)` for records whose outputs are acknowledged. Schedules a
   * background commit; while the consumer stops, commits before returning, so the batch that
   * finishes last commits before kafkajs leaves the group.
   */
  async resolved(payload: EachBatchPayload): Promise<void> {
    // kafkajs binds both to the consumer group, not to this batch: they stay valid across batches
    // and generations (uncommittedOffsets reads the offset manager of the current generation).
    this.commit = (offsets) => payload.commitOffsetsIfNecessary(offsets);
    this.uncommitted = () => payload.uncommittedOffsets();
    if (this.stopping || !payload.isRunning()) {
      await this.flush();
      return;
    }
    if (this.timer !== undefined) return;
    const wait = Math.max(0, this.lastCommitAt + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, wait);
    this.timer.unref();
  }

  /** Commits everything resolved and not yet committed; failures are logged (the next commit retries them). */
  flush(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const next = this.inFlight.then(async () => {
      const commit = this.commit;
      const uncommitted = this.uncommitted;
      if (commit === undefined || uncommitted === undefined) return;
      const offsets = uncommitted();
      if (offsets.topics.length === 0) return;
      this.lastCommitAt = Date.now();
      try {
        await commit(offsets);
      } catch (err) {
        // A rebalance or a coordinator move: the offsets stay resolved (or belong to the next
        // generation's owner now); records are redelivered at worst, never lost.
        this.logger.warn({ err }, 'offset commit failed; will retry with the next one');
      }
    });
    this.inFlight = next;
    return next;
  }

  /** Before `consumer.disconnect()`: commits what is resolved; batches finishing later commit inline. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.flush();
  }
}
