/**
 * The rollout controller against the real broker: temp control and health topics, short stages,
 * synthetic V2 snapshots (and a real correlator-v2 with an injected fault), the router in-process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryCodec, parseEventLine } from '@tapio/events';
import { createLogger } from '@tapio/observability';
import { readRolloutState } from '@tapio/rollout';
import type { RolloutState } from '@tapio/rollout';
import { parseHealthSnapshot } from '@tapio/routing';
import { startService } from '@tapio/runtime';
import { startCorrelatorV2 } from '@tapio/service-correlator-v2';
import { startRouter } from '@tapio/service-router';
import { eventually, kafka, randomName } from '../../helpers/stack';
import {
  TEST_CRITERIA,
  connectedProducer,
  defer,
  topic,
  feedSnapshots,
  rolloutConfig,
  send,
  sendSnapshot,
  startCommand,
  startController,
  v2Snapshot,
  watchControl,
  webhookReceiver,
} from './helpers';
import { runTapio } from '../../helpers/cli';

const tapio = (args: string[], env: Record<string, string>) => runTapio(args, { ...process.env, ...env });

/** Breach-and-retry rounds in the timing test. */
const RUNS = 5;

const health = (s: { service: { health(): Record<string, unknown> } }) => s.service.health();

test('a full rollout started from the CLI with healthy V2 snapshots reaches 100 %; webhooks and status follow', async (t) => {
  const control = await topic(t, 'rollout-control', 1);
  const healthTopic = await topic(t, 'rollout-health', 1);
  const hook = await webhookReceiver(t);
  const config = rolloutConfig(control, healthTopic, {
    webhookUrl: hook.url,
    webhookAuthorization: 'Bearer rollout-ci',
  });
  const watch = await watchControl(t, control);
  const controller = await startController(t, config, randomName('tapio-rollout-controller'));
  await eventually(() => health(controller)['active'] === true, 20_000, 'controller active');

  const producer = await connectedProducer(t);
  feedSnapshots(t, producer, healthTopic, () => v2Snapshot(100, 0, 5));

  const env = {
    TAPIO_TOPICS__CONTROL: control,
    TAPIO_ROLLOUT__CRITERIA: JSON.stringify(TEST_CRITERIA),
  };
  const started = await tapio(['rollout', 'start', '--stages', '10:2s,50:2s,100:2s', '--by', 'ci'], env);
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stderr, /start sent \(10% → 50% → 100%\)/);

  await eventually(() => health(controller)['status'] === 'completed', 30_000, 'rollout completed');
  await eventually(() => watch.routing.at(-1)?.config.v2Percentage === 100, 5000, 'routing at 100 %');
  assert.deepEqual(
    watch.routing.map((r) => [r.config.strategy, r.config.v2Percentage]),
    [
      ['progressive', 10],
      ['progressive', 50],
      ['progressive', 100],
    ],
  );
  assert.deepEqual(
    watch.routing.map((r) => r.config.epoch),
    [1, 2, 3],
  );

  const state = (await readRolloutState(kafka(), control))?.state as RolloutState;
  assert.equal(state.status, 'completed');
  assert.deepEqual(
    state.history.filter((h) => h.kind !== 'hold').map((h) => h.kind),
    ['command:start', 'advance', 'advance', 'complete'],
  );
  assert.equal(state.history[0]?.by, 'ci');
  const advance = state.history.find((h) => h.kind === 'advance');
  assert.equal(advance?.criteria?.find((c) => c.name === 'errorRate')?.verdict, 'met');

  await eventually(() => hook.received.some((n) => n['event'] === 'completed'), 10_000, 'completion webhook');
  assert.deepEqual(
    hook.received.map((n) => [n['event'], n['v2Percentage']]),
    [
      ['stage-changed', 10],
      ['stage-changed', 50],
      ['stage-changed', 100],
      ['completed', 100],
    ],
  );
  assert.deepEqual(new Set(hook.authorizations), new Set(['Bearer rollout-ci']), 'rollout.webhookAuthorization sent');

  const metrics = await controller.ctx.metrics.metrics();
  assert.match(metrics, /tapio_rollout_stage\{[^}]*\} 3/);
  assert.match(metrics, /tapio_rollout_v2_percentage\{[^}]*\} 100/);
  assert.match(metrics, /tapio_rollout_decisions_total\{decision="advance"[^}]*\} 2/);

  const json = await tapio(['rollout', 'status', '--json'], env);
  assert.equal(json.code, 0, json.stderr);
  assert.equal((JSON.parse(json.stdout) as RolloutState).status, 'completed');
  const text = await tapio(['rollout', 'status'], env);
  assert.match(text.stdout, /status\s+completed/);
  assert.match(text.stdout, /3\s+100\s+2s\s+no\s+passed/);
  const refused = await tapio(['rollout', 'start', '--stages', '50:1s,10:1s'], env);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /must raise the percentage/);
});

test('breaching V2 snapshots roll back to 0 % (breaker forced open) within seconds; measured over several runs', async (t) => {
  const control = await topic(t, 'rollout-control', 1);
  const healthTopic = await topic(t, 'rollout-health', 1);
  const events = await topic(t, 'rollout-events', 1);
  const [v1, v2, shadow] = await Promise.all([
    topic(t, 'rollout-v1', 1),
    topic(t, 'rollout-v2', 1),
    topic(t, 'rollout-shadow', 1),
  ]);
  const hook = await webhookReceiver(t);
  const config = rolloutConfig(control, healthTopic, { webhookUrl: hook.url });
  const watch = await watchControl(t, control);
  const router = await startService(
    'router',
    (ctx) =>
      startRouter(ctx, {
        inputTopic: events,
        v1Topic: v1,
        v2Topic: v2,
        shadowTopic: shadow,
        controlTopic: control,
        healthTopic,
        groupId: randomName('tapio-router'),
      }),
    { config, logger: createLogger('router', 'silent') },
  );
  defer(t, () => router.shutdown('test end'));
  const controller = await startController(t, config, randomName('tapio-rollout-controller'));
  await eventually(() => health(controller)['active'] === true, 20_000, 'controller active');

  const producer = await connectedProducer(t);
  let healthy = true;
  feedSnapshots(t, producer, healthTopic, () => (healthy ? v2Snapshot(100, 0, 5) : null));
  await send(producer, control, startCommand('10:120s,50:120s'));
  await eventually(() => watch.routing.at(-1)?.config.v2Percentage === 10, 10_000, 'stage 1 routed');

  const runs: { toControlMs: number; toRouterMs: number }[] = [];
  for (let run = 1; run <= RUNS; run++) {
    // Healthy snapshots first; the random part spreads the breach over the controller's 1 s evaluation phase.
    await new Promise((r) => setTimeout(r, 1500 + Math.random() * 1000));
    const before = watch.routing.length;
    healthy = false;
    const breachAtMs = Date.now();
    await sendSnapshot(producer, healthTopic, v2Snapshot(200, 200, 5));
    await eventually(
      () => watch.routing.slice(before).some((r) => r.config.v2Percentage === 0),
      15_000,
      `run ${run}: routing 0 %`,
    );
    const zero = watch.routing.slice(before).find((r) => r.config.v2Percentage === 0);
    assert.ok(zero);
    assert.equal(zero.config.breaker.mode, 'forced-open');
    // Polled every 5 ms: the router's own report of the epoch it routes with.
    const deadline = Date.now() + 10_000;
    while (Number(router.service.health()['epoch']) < zero.config.epoch && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(Number(router.service.health()['epoch']) >= zero.config.epoch, 'router applied the epoch');
    const routerAtMs = Date.now();
    runs.push({ toControlMs: zero.receivedAtMs - breachAtMs, toRouterMs: routerAtMs - breachAtMs });
    await eventually(() => health(controller)['status'] === 'rolled-back', 5000, 'rolled back');

    // Retry: the stage starts again from its beginning with V2 at 10 % and the breaker back on auto.
    healthy = true;
    const mark = watch.routing.length;
    await send(producer, control, 'retry');
    await eventually(
      () => watch.routing.slice(mark).some((r) => r.config.v2Percentage === 10 && r.config.breaker.mode === 'auto'),
      10_000,
      `run ${run}: retried`,
    );
  }
  for (const [i, r] of runs.entries()) {
    t.diagnostic(
      `run ${i + 1}: breaching snapshot -> routing v2Percentage 0 on the control topic ${r.toControlMs} ms, -> router on the new epoch ${r.toRouterMs} ms`,
    );
  }
  console.log(`rollout breach-to-0%: ${JSON.stringify(runs)}`);

  const state = (await readRolloutState(kafka(), control))?.state as RolloutState;
  const rollbacks = state.history.filter((h) => h.kind === 'rollback');
  assert.equal(rollbacks.length, RUNS);
  const errorRate = rollbacks[0]?.criteria?.find((c) => c.name === 'errorRate');
  assert.equal(errorRate?.verdict, 'breached');
  assert.ok((errorRate?.value ?? 0) > 0.05, JSON.stringify(errorRate));
  const metrics = await controller.ctx.metrics.metrics();
  assert.match(metrics, new RegExp(`tapio_rollback_triggered_total\\{cause="breach"[^}]*\\} ${RUNS}`));
  await eventually(
    () => hook.received.filter((n) => n['event'] === 'rollback').length === RUNS,
    10_000,
    'rollback hooks',
  );
  assert.match(String(hook.received.find((n) => n['event'] === 'rollback')?.['reason']), /errorRate/);
});

test('a real correlator-v2 whose engine fails (fault injector) reports breaching snapshots and is rolled back', async (t) => {
  const control = await topic(t, 'rollout-control', 1);
  const healthTopic = await topic(t, 'rollout-health', 1);
  const input = await topic(t, 'rollout-v2-in', 1);
  const output = await topic(t, 'rollout-v2-out', 1);
  const dlq = await topic(t, 'rollout-dlq', 1);
  const config = rolloutConfig(
    control,
    healthTopic,
    {},
    {
      correlator: { role: 'primary', healthIntervalMs: 500, slowCallMs: 100 },
      topics: { control, health: healthTopic, dlq },
    },
  );
  const watch = await watchControl(t, control);

  // The first V2 snapshot reporting errors, as read from the health topic (its `at` is taken just before it is produced).
  let firstFailing: { at: number } | null = null;
  const reader = kafka().consumer({ groupId: randomName('health-watch'), maxWaitTimeInMs: 50 });
  await reader.connect();
  await reader.subscribe({ topic: healthTopic, fromBeginning: true });
  defer(t, () => reader.disconnect());
  await reader.run({
    eachMessage: ({ message }) => {
      try {
        const s = parseHealthSnapshot(message.value);
        if (s.engine === 'v2' && s.errors > 0 && firstFailing === null) firstFailing = { at: s.at };
      } catch {
        // comparator snapshots and the like
      }
      return Promise.resolve();
    },
  });

  let failing = false;
  const correlator = await startService(
    'correlator-v2',
    (ctx) =>
      startCorrelatorV2(ctx, {
        inputTopic: input,
        outputTopic: output,
        groupId: randomName('tapio-v2'),
        faultInjector: () => {
          if (failing) throw new Error('injected V2 failure');
        },
      }),
    { config, logger: createLogger('correlator-v2', 'silent') },
  );
  defer(t, () => correlator.shutdown('test end'));
  const controller = await startController(t, config, randomName('tapio-rollout-controller'));
  await eventually(() => health(controller)['active'] === true, 20_000, 'controller active');

  const codec = new RegistryCodec({ url: config.registry.url });
  const schemaId = await codec.registerEvent(input);
  const producer = await connectedProducer(t);
  let n = 0;
  let feeding = true;
  const feeder = (async () => {
    while (feeding) {
      const messages = Array.from({ length: 20 }, () => {
        const i = n++;
        const e = parseEventLine(
          JSON.stringify({
            id: `e${i}`,
            timestamp: Date.now(),
            source: 'kubernetes',
            type: 'pod.restart',
            severity: 'warning',
            entity: { namespace: 'shop', kind: 'pod', name: `web-${i % 7}`, node: 'node-1' },
            attributes: { restart_count: 1, exit_code: 1 },
          }),
        );
        return { key: `pod/shop/web-${i % 7}`, value: codec.encode(schemaId, e) };
      });
      await producer.send({ topic: input, acks: -1, messages }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  defer(t, async () => {
    feeding = false;
    await feeder;
  });

  await send(producer, control, startCommand('10:120s,100:120s', { ...TEST_CRITERIA }));
  await eventually(() => watch.routing.at(-1)?.config.v2Percentage === 10, 10_000, 'stage 1 routed');
  // Healthy real snapshots first: the stage holds on its minimum duration, nothing breaches.
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(health(controller)['status'], 'running');

  await new Promise((r) => setTimeout(r, Math.random() * 1000));
  failing = true;
  await eventually(() => watch.routing.some((r) => r.config.v2Percentage === 0), 20_000, 'routing 0 %');
  const zero = watch.routing.find((r) => r.config.v2Percentage === 0);
  assert.ok(zero && firstFailing);
  const breachAt: number = (firstFailing as { at: number }).at;
  t.diagnostic(
    `real correlator-v2: first failing snapshot -> routing v2Percentage 0 readable: ${zero.receivedAtMs - breachAt} ms`,
  );
  console.log(`rollout real-correlator breach-to-0%: ${zero.receivedAtMs - breachAt} ms`);
  const state = (await readRolloutState(kafka(), control))?.state as RolloutState;
  assert.equal(state.status, 'rolled-back');
  assert.equal(state.rollback?.cause, 'breach');
  assert.ok(state.rollback?.breaches.some((b) => b.name === 'errorRate'));
});

test('a restarted controller resumes the same stage; of two controllers one acts and the standby takes over', async (t) => {
  const control = await topic(t, 'rollout-control', 1);
  const healthTopic = await topic(t, 'rollout-health', 1);
  const config = rolloutConfig(control, healthTopic);
  const groupId = randomName('tapio-rollout-controller');
  const watch = await watchControl(t, control);
  const producer = await connectedProducer(t);
  feedSnapshots(t, producer, healthTopic, () => v2Snapshot(100, 0, 5));

  const first = await startController(t, config, groupId);
  await eventually(() => health(first)['active'] === true, 20_000, 'first active');
  await send(producer, control, startCommand('10:2s,50:120s,100:120s'));
  await eventually(() => health(first)['stage'] === 2, 15_000, 'stage 2');
  const stored = () => watch.states.at(-1);
  await eventually(() => stored()?.stageIndex === 1, 5000, 'stage 2 stored');
  const stageStartedAtMs = stored()?.stageStartedAtMs;
  await first.shutdown('restart');

  // A command sent while no controller runs is applied by the next one.
  await send(producer, control, 'pause');
  const second = await startController(t, config, groupId);
  await eventually(() => health(second)['active'] === true, 30_000, 'second active');
  await eventually(() => health(second)['status'] === 'paused', 5000, 'pause applied after restart');
  assert.equal(health(second)['stage'], 2);
  assert.equal(stored()?.stageStartedAtMs, stageStartedAtMs, 'same stage, same start');
  const epoch = watch.routing.at(-1)?.config.epoch;
  assert.equal(watch.routing.at(-1)?.config.v2Percentage, 50);

  // A second member joins: after the rebalance exactly one of the two acts (the assignor picks
  // either), the other stands by; when the active one leaves, the standby takes over.
  const third = await startController(t, config, groupId);
  const pair = [second, third];
  await eventually(() => pair.filter((c) => health(c)['active'] === true).length === 1, 30_000, 'one active');
  await new Promise((r) => setTimeout(r, 1000));
  const acting = pair.find((c) => health(c)['active'] === true);
  const standby = pair.find((c) => c !== acting);
  assert.ok(acting && standby, 'still exactly one active');
  assert.equal(health(standby)['active'], false);
  await send(producer, control, 'resume');
  await eventually(() => health(acting)['status'] === 'running', 10_000, 'resume applied by the active one');
  await acting.shutdown('hand over');
  await eventually(() => health(standby)['active'] === true, 30_000, 'standby took over');
  assert.equal(health(standby)['status'], 'running');
  assert.equal(health(standby)['stage'], 2);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(watch.routing.at(-1)?.config.epoch, epoch, 'no routing change across restarts');
  const history = (await readRolloutState(kafka(), control))?.state.history.map((h) => h.kind) ?? [];
  assert.equal(history.filter((k) => k === 'command:pause').length, 1, history.join(' '));
});
