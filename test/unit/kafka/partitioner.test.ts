import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createKafka, PARTITIONER } from '@tapio/kafka';
import { loadConfig } from '@tapio/config';

// Partitions that Kafka's Java client (4.1.1, BuiltInPartitioner.partitionForKey) gives these keys for
// 6, 12 and 7 partitions. A Java collector and `tapio produce` must agree on where a key goes.
const JAVA: [string, number, number, number][] = [
  ['pod/default/api-7d9f', 3, 9, 3],
  ['node/worker-3', 4, 4, 6],
  ['container/payments/checkout-5c7b/app', 4, 4, 5],
  ['service/shop/cart', 3, 3, 4],
  ['namespace/kube-system', 4, 4, 3],
  ['pod/ns-ñ/π-1', 0, 6, 6],
  ['x', 4, 10, 4],
];

test('the partitioner puts a key on the partition the Java client would', () => {
  const partition = PARTITIONER();
  for (const [key, p6, p12, p7] of JAVA) {
    for (const [count, expected] of [
      [6, p6],
      [12, p12],
      [7, p7],
    ] as const) {
      const partitionMetadata = Array.from({ length: count }, (_, i) => ({
        partitionId: i,
        leader: 1,
        partitionErrorCode: 0,
        replicas: [1],
        isr: [1],
      }));
      assert.equal(
        partition({ topic: 't', partitionMetadata, message: { key, value: null } }),
        expected,
        `${key} of ${count}`,
      );
    }
  }
});

test('a producer of the project client logs no partitioner warning', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const config = loadConfig({ env: {} });
  createKafka(config, logger).producer({ idempotent: true, maxInFlightRequests: 1 });
  // kafkajs warns at producer() when no partitioner is named; the check below fails without the default.
  const kafkaWarnings = lines.filter((l) => /partitioner/i.test(l));
  assert.deepEqual(kafkaWarnings, []);
});
