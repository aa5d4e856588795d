import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '@tapio/config';
import { TapioError, errorCode } from '@tapio/errors';
import {
  MAX_ROUTING_EPOCH,
  RoutingTable,
  defaultRoutingConfig,
  parseRoutingConfig,
  validateRoutingConfig,
} from '@tapio/routing';

const base = defaultRoutingConfig(loadConfig({ env: {} }));
const doc = (epoch: number, v2Percentage: number): Buffer =>
  // JSON.stringify writes 1e300 as 1e+300, as any writer of the control topic could.
  Buffer.from(JSON.stringify({ ...base, epoch, v2Percentage }));

// Root cause: the schema took any non-negative integer as epoch, and routers refuse an epoch not above
// the one in force, so one document with epoch 1e300 (or 2^53, where epoch + 1 === epoch) froze routing.
test('a routing document with a huge epoch is rejected; routing goes on with the last good one and takes the next', () => {
  // What a router does with each control record: parse, else count it as rejected and keep the table.
  const table = new RoutingTable(base);
  const rejected: string[] = [];
  const onControl = (bytes: Buffer): boolean => {
    try {
      return table.apply(parseRoutingConfig(bytes), 0).applied;
    } catch (err) {
      assert.ok(err instanceof TapioError);
      rejected.push(`${errorCode(err)} ${err.context.field}`);
      return false;
    }
  };

  assert.equal(onControl(doc(1, 20)), true);
  for (const huge of [1e300, 2 ** 53, Number.MAX_SAFE_INTEGER, MAX_ROUTING_EPOCH + 1]) {
    assert.equal(onControl(doc(huge, 90)), false, `epoch ${huge} is refused`);
  }
  assert.deepEqual(rejected, Array(4).fill('INVALID_CONFIG epoch'), 'each counted as an invalid document');
  assert.equal(table.current.epoch, 1, 'the last good document stays in force');
  assert.equal(table.current.v2Percentage, 20);

  assert.equal(onControl(doc(2, 30)), true, 'the next epoch still applies');
  assert.equal(table.current.v2Percentage, 30);
});

test('the epoch bound admits millisecond timestamps and names the field when exceeded', () => {
  assert.equal(validateRoutingConfig({ ...base, epoch: Date.UTC(2500, 0, 1) }).epoch, Date.UTC(2500, 0, 1));
  assert.equal(validateRoutingConfig({ ...base, epoch: MAX_ROUTING_EPOCH }).epoch, MAX_ROUTING_EPOCH);
  assert.throws(
    () => validateRoutingConfig({ ...base, epoch: MAX_ROUTING_EPOCH + 1 }),
    (err: unknown) =>
      err instanceof TapioError && err.context.field === 'epoch' && /less than or equal to/.test(err.message),
  );
});
