import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { resultToJsonLine } from '@tapio/events';
import type { Result } from '@tapio/events';
import {
  MAX_EVIDENCE,
  RULES,
  connectionFailureCascade,
  cpuContention,
  crashLoop,
  fingerprint,
  memoryLeak,
  resultId,
  routesFor,
  scopeKey,
  scopeKeyOf,
  scopeKeysFor,
  selectEvidence,
} from '@tapio/rules';
import { EventsBuilder } from '../../helpers/events-builder';

test('container keys: kind container uses entity.pod + entity.name; other kinds pod + container', () => {
  const b = new EventsBuilder();
  assert.equal(scopeKey('container', b.container('memory.usage', 0)), 'container/shop/web-1/app');
  const podWithContainer = b.pod('memory.usage', 0);
  podWithContainer.entity.pod = 'web-1';
  podWithContainer.entity.container = 'app';
  assert.equal(scopeKey('container', podWithContainer), 'container/shop/web-1/app');
  assert.equal(scopeKey('container', b.pod('memory.usage', 0)), null);
  assert.equal(scopeKey('container', b.container('memory.usage', 0, { pod: null })), null);
  assert.equal(scopeKey('container', b.container('memory.usage', 0, { namespace: null })), null);
});

test('pod keys: kind pod its name, kind container its pod, other kinds none', () => {
  const b = new EventsBuilder();
  assert.equal(scopeKey('pod', b.pod('pod.restart', 0)), 'pod/shop/web-1');
  assert.equal(scopeKey('pod', b.container('cpu.throttle', 0, { pod: 'api-7' })), 'pod/shop/api-7');
  assert.equal(scopeKey('pod', b.node('cpu.usage', 0)), null);
  assert.equal(scopeKey('pod', b.pod('pod.restart', 0, { namespace: null })), null);
  assert.equal(scopeKey('pod', b.pod('pod.restart', 0, { namespace: '' })), null);
});

test('node keys: kind node its name, otherwise entity.node', () => {
  const b = new EventsBuilder();
  assert.equal(scopeKey('node', b.node('disk.usage', 0, { name: 'n7' })), 'node/n7');
  assert.equal(scopeKey('node', b.pod('pod.evicted', 0, { node: 'n3' })), 'node/n3');
  assert.equal(scopeKey('node', b.pod('pod.evicted', 0, { node: null })), null);
});

test('namespace and service keys', () => {
  const b = new EventsBuilder();
  assert.equal(scopeKey('namespace', b.pod('network.dns_failure', 0)), 'namespace/shop');
  assert.equal(scopeKey('namespace', b.node('disk.usage', 0, { namespace: null })), null);
  const failure = b.pod('network.connection_failure', 0, { namespace: 'front', labels: { destination: 'shop/cart' } });
  assert.equal(scopeKeyOf(connectionFailureCascade, failure), 'service/shop/cart');
  for (const bad of ['cart', 'shop/', '/cart', 'a/b/c']) {
    const e = b.pod('network.connection_failure', 0, { labels: { destination: bad } });
    assert.equal(scopeKeyOf(connectionFailureCascade, e), null, bad);
  }
  assert.equal(
    scopeKeyOf(connectionFailureCascade, b.pod('pod.not_ready', 0, { service: 'cart' })),
    'service/shop/cart',
  );
  assert.equal(scopeKeyOf(connectionFailureCascade, b.pod('pod.not_ready', 0)), null);
});

test('per-type kind filters: R5 reads node cpu.usage only, R6 pod cpu.usage only', () => {
  const b = new EventsBuilder();
  assert.equal(scopeKeyOf(cpuContention, b.node('cpu.usage', 0)), 'node/node-1');
  assert.equal(scopeKeyOf(cpuContention, b.pod('cpu.usage', 0)), null);
  assert.equal(scopeKeyOf(crashLoop, b.pod('cpu.usage', 0)), null);
  assert.equal(scopeKeyOf(memoryLeak, b.container('memory.usage', 0)), 'container/shop/web-1/app');
});

test('routesFor: one route per distinct scope key, rules in catalogue order', () => {
  const b = new EventsBuilder();
  assert.deepEqual(routesFor(b.pod('pod.restart', 0, { service: 'cart' })), [
    { scopeKey: 'node/node-1', ruleIds: ['memory-pressure-cascade'] },
    { scopeKey: 'pod/shop/web-1', ruleIds: ['crash-loop'] },
    { scopeKey: 'service/shop/cart', ruleIds: ['connection-failure-cascade'] },
  ]);
  assert.deepEqual(routesFor(b.pod('cpu.throttle', 0)), [
    { scopeKey: 'pod/shop/web-1', ruleIds: ['cpu-throttle-impact'] },
    { scopeKey: 'node/node-1', ruleIds: ['cpu-contention'] },
  ]);
  assert.deepEqual(routesFor(b.container('memory.usage', 0)), [
    { scopeKey: 'container/shop/web-1/app', ruleIds: ['memory-leak', 'oom-prediction'] },
  ]);
  assert.deepEqual(routesFor(b.node('cpu.usage', 0)), [{ scopeKey: 'node/node-1', ruleIds: ['cpu-contention'] }]);
  assert.deepEqual(routesFor(b.pod('cpu.usage', 0)), [{ scopeKey: 'pod/shop/web-1', ruleIds: ['high-cpu-pattern'] }]);
  assert.deepEqual(routesFor(b.pod('process.exec', 0)), []);
  assert.deepEqual(scopeKeysFor(b.pod('pod.restart', 0, { node: null })), ['pod/shop/web-1']);
});

test('result id and fingerprint', () => {
  const expected = createHash('sha256').update('crash-loop|pod/shop/web-1|e42').digest('hex').slice(0, 32);
  assert.equal(resultId('crash-loop', 'pod/shop/web-1', 'e42'), expected);
  assert.match(expected, /^[0-9a-f]{32}$/);
  assert.equal(fingerprint('crash-loop', 'pod/shop/web-1'), 'crash-loop|pod/shop/web-1');
});

test('evidence: window W only, sorted by timestamp then id, trigger kept when capped', () => {
  const b = new EventsBuilder();
  const old = b.pod('pod.restart', -901);
  const x = b.pod('pod.restart', 5, { id: 'x' });
  const a = b.pod('pod.restart', 5, { id: 'a' });
  const trigger = b.pod('pod.restart', 10, { id: 't' });
  assert.deepEqual(selectEvidence(crashLoop, [old, x, a, trigger], trigger.timestamp, trigger), ['a', 'x', 't']);

  const many = Array.from({ length: 70 }, (_, i) => b.pod('pod.restart', i, { id: `m${String(i).padStart(2, '0')}` }));
  const early = many[3]!; // trigger that sorts among the smallest (out-of-order arrival)
  const picked = selectEvidence(crashLoop, many.slice(0, 4), early.timestamp, early);
  assert.deepEqual(picked, ['m00', 'm01', 'm02', 'm03']);
  const last = many[69]!;
  const capped = selectEvidence(crashLoop, many, last.timestamp, last);
  assert.equal(capped.length, MAX_EVIDENCE);
  assert.deepEqual(
    capped,
    many.slice(20).map((e) => e.id),
  );
});

test('resultToJsonLine has a fixed field order', () => {
  const shuffled = {
    engine: 'v1',
    evidence: ['e1'],
    confidence: 0.7,
    severity: 'high',
    triggerEventId: 'e1',
    triggeredAt: 1,
    entityKey: 'pod/shop/web-1',
    category: 'reliability',
    ruleId: 'crash-loop',
    id: 'abc',
  } satisfies Result;
  assert.equal(
    resultToJsonLine(shuffled),
    '{"id":"abc","ruleId":"crash-loop","category":"reliability","entityKey":"pod/shop/web-1","triggeredAt":1,' +
      '"triggerEventId":"e1","severity":"high","confidence":0.7,"evidence":["e1"],"engine":"v1"}',
  );
  assert.equal(RULES.length, 12);
});
