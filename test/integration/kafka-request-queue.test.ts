import { test } from 'node:test';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { createKafka } from '@tapio/kafka';
import { testConfig } from '../helpers/stack';

// Root cause (kafkajs 2.2.4, tulios/kafkajs#1751/#1704): the request queue re-armed its pending-request
// check after every check, unthrottled with a delay of -1 - Date.now(): a 1 ms timer loop per broker
// connection, and a TimeoutNegativeWarning in every service's log on Node 24+.
test('an idle kafkajs connection neither spins its request-queue timer nor warns of a negative timeout', async (t) => {
  // The module @tapio/kafka patched on import (kafkajs is one copy, hoisted).
  const RequestQueue = createRequire(__filename)('kafkajs/src/network/requestQueue') as {
    prototype: { checkPendingRequests: (this: unknown) => void };
  };
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  const check = RequestQueue.prototype.checkPendingRequests;
  let checks = 0;
  RequestQueue.prototype.checkPendingRequests = function (this: unknown) {
    checks++;
    check.call(this);
  };
  t.after(() => {
    RequestQueue.prototype.checkPendingRequests = check;
    process.off('warning', onWarning);
  });

  const admin = createKafka(testConfig()).admin();
  await admin.connect();
  try {
    await admin.describeCluster();
    const before = checks;
    await new Promise((r) => setTimeout(r, 1000));
    // Unpatched: ~1 check per ms per connection (hundreds here); patched: none while nothing is sent.
    assert.ok(checks - before < 20, `${checks - before} pending-request checks in 1 s on an idle connection`);
  } finally {
    await admin.disconnect();
  }
  assert.deepEqual(
    warnings.filter((w) => w.startsWith('TimeoutNegativeWarning')),
    [],
  );
});
