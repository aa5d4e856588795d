/** Shared pieces of the rollout integration tests: a controller on temp topics, a snapshot feeder, a control watcher. */
import type { TestContext } from 'node:test';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TapioConfig } from '@tapio/config';
import { createTopicsReady } from '@tapio/kafka';
import type { Producer } from '@tapio/kafka';
import { createLogger } from '@tapio/observability';
import {
  ROLLOUT_STATE_KEY,
  parseRolloutState,
  parseStageSpec,
  resolveStages,
  sendRolloutCommand,
} from '@tapio/rollout';
import type { RolloutCommand, RolloutState } from '@tapio/rollout';
import { ROUTING_CONTROL_KEY, encodeHealthSnapshot, parseRoutingConfig } from '@tapio/routing';
import type { HealthSnapshot, RoutingConfig } from '@tapio/routing';
import { startService } from '@tapio/runtime';
import type { StartedService } from '@tapio/runtime';
import { startRolloutController } from '@tapio/service-rollout-controller';
import { kafka, randomName, testConfig } from '../../helpers/stack';

const cleanups = new WeakMap<TestContext, (() => unknown)[]>();

/**
 * Registers a cleanup that runs after the test in reverse order of registration (node:test runs
 * `t.after` hooks first-registered first): services stop before the topics they read are deleted.
 */
export function defer(t: TestContext, fn: () => unknown): void {
  let list = cleanups.get(t);
  if (list === undefined) {
    const fresh: (() => unknown)[] = [];
    cleanups.set(t, fresh);
    t.after(async () => {
      for (const f of fresh.reverse()) await f();
    });
    list = fresh;
  }
  list.push(fn);
}

/** A topic with a random name, deleted after the test (after everything registered later has stopped). */
export async function topic(t: TestContext, prefix: string, numPartitions = 1): Promise<string> {
  const name = randomName(prefix);
  const admin = kafka().admin();
  await admin.connect();
  await createTopicsReady(admin, [{ topic: name, numPartitions, replicationFactor: 1 }]);
  await admin.disconnect();
  defer(t, async () => {
    const a = kafka().admin();
    await a.connect();
    await a.deleteTopics({ topics: [name] }).catch(() => undefined);
    await a.disconnect();
  });
  return name;
}

export const TEST_CRITERIA = {
  errorRate: { max: 0.05, minSamples: 50, required: true },
  slowCallRate: { max: 0.2, minSamples: 50, required: true },
  mismatchRate: { max: 0.05, minSamples: 20, required: false },
  lag: { max: 1000, minSamples: 2, required: true },
};

export function rolloutConfig(
  control: string,
  health: string,
  rollout: Record<string, unknown> = {},
  more: Record<string, unknown> = {},
): Readonly<TapioConfig> {
  return testConfig({
    topics: { control, health },
    http: { port: 0 },
    log: { level: 'silent' },
    kafka: { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1000 },
    rollout: {
      criteria: TEST_CRITERIA,
      snapshotWindowMs: 20_000,
      statusPort: 0,
      uiToken: 'test-token',
      ...rollout,
    },
    ...more,
  });
}

export async function startController(
  t: TestContext,
  config: Readonly<TapioConfig>,
  groupId: string,
): Promise<StartedService> {
  const started = await startService(
    'rollout-controller',
    (ctx) => startRolloutController(ctx, { groupId, joinTimeoutMs: 20_000 }),
    { config, logger: createLogger('rollout-controller', 'silent') },
  );
  let stopped = false;
  defer(t, () => (stopped ? undefined : started.shutdown('test end')));
  const shutdown = started.shutdown.bind(started);
  return {
    ...started,
    shutdown: (reason: string) => {
      stopped = true;
      return shutdown(reason);
    },
  };
}

export async function connectedProducer(t: TestContext): Promise<Producer> {
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  defer(t, () => producer.disconnect());
  return producer;
}

export function v2Snapshot(calls: number, errors: number, lag = 0, instance = 'synthetic-v2'): HealthSnapshot {
  return { engine: 'v2', instance, at: Date.now(), calls, errors, slowCalls: 0, lag };
}

export async function sendSnapshot(producer: Producer, topic: string, s: HealthSnapshot): Promise<void> {
  await producer.send({ topic, acks: -1, messages: [{ key: s.instance, value: encodeHealthSnapshot(s) }] });
}

/** Produces a snapshot every `everyMs` from `make()` until stopped (or the test ends). */
export function feedSnapshots(
  t: TestContext,
  producer: Producer,
  topic: string,
  make: () => HealthSnapshot | null,
  everyMs = 300,
): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      const s = make();
      if (s !== null) await sendSnapshot(producer, topic, s).catch(() => undefined);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  const stop = async (): Promise<void> => {
    running = false;
    await loop;
  };
  defer(t, stop);
  return { stop };
}

export interface SeenRouting {
  config: RoutingConfig;
  receivedAtMs: number;
}

/** Follows the control topic from the beginning: every routing document and rollout state, with arrival times. */
export async function watchControl(t: TestContext, topic: string) {
  const routing: SeenRouting[] = [];
  const states: RolloutState[] = [];
  const consumer = kafka().consumer({ groupId: randomName('control-watch'), maxWaitTimeInMs: 50 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  defer(t, () => consumer.disconnect());
  await consumer.run({
    autoCommit: false,
    eachMessage: ({ message }) => {
      const key = message.key?.toString();
      if (key === ROUTING_CONTROL_KEY)
        routing.push({ config: parseRoutingConfig(message.value), receivedAtMs: Date.now() });
      else if (key === ROLLOUT_STATE_KEY) states.push(parseRolloutState(message.value));
      return Promise.resolve();
    },
  });
  return { routing, states };
}

export function startCommand(spec: string, criteria = TEST_CRITERIA): RolloutCommand {
  return {
    command: 'start',
    at: Date.now(),
    by: 'test',
    id: randomName('rollout'),
    stages: resolveStages(parseStageSpec(spec), criteria),
  };
}

export async function send(producer: Producer, topic: string, cmd: RolloutCommand | RolloutCommand['command']) {
  await sendRolloutCommand(
    producer,
    topic,
    typeof cmd === 'string' ? { command: cmd, at: Date.now(), by: 'test' } : cmd,
  );
}

/** A webhook receiver: every POSTed JSON body, and the Authorization header of each (or undefined). */
export async function webhookReceiver(
  t: TestContext,
): Promise<{ url: string; received: Record<string, unknown>[]; authorizations: (string | undefined)[] }> {
  const received: Record<string, unknown>[] = [];
  const authorizations: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as Record<string, unknown>);
      authorizations.push(req.headers.authorization);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  defer(
    t,
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received, authorizations };
}
