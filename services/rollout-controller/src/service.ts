/**
 * The rollout controller (seed plan Phase 3-4): runs the rollout state machine of @tapio/rollout
 * once per `rollout.evaluateIntervalMs` on the health snapshots it reads, and writes the routing
 * config (strategy `progressive`, V2 percentage of the stage) when a stage changes; on a breach it
 * writes V2 0 % (and forces the breaker open when `rollout.forceBreakerOnRollback`).
 *
 * One active controller: every instance joins the consumer group `tapio-rollout-controller` on the
 * one-partition control topic; the member that is assigned the partition is the active one, the
 * others are idle standbys that take over on a rebalance (a clean stop hands over at once, a crash
 * after the session timeout). The group never commits: the active member reads the control topic
 * from the beginning on every assignment, takes the latest rollout state, the routing config in
 * force and the commands after the state's `lastCommandOffset`, and then acts.
 *
 * Every instance reads the health topic from its end (its own group), so a standby's window is warm.
 */
import { randomBytes } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import { errorCode } from '@tapio/errors';
import type { KafkaMessage } from '@tapio/kafka';
import {
  ROLLOUT_COMMAND_KEY,
  ROLLOUT_STATE_KEY,
  SnapshotWindow,
  applyCommand,
  categorySplit,
  comparisonCountsOf,
  evaluate,
  idleState,
  isActive,
  parseRolloutCommand,
  parseRolloutState,
  routingChange,
  sendRolloutCommand,
  targetPercentage,
  writeRolloutState,
} from '@tapio/rollout';
import type { CommandName, Decision, Figures, RolloutCommand, RolloutState } from '@tapio/rollout';
import {
  ROUTING_CONTROL_KEY,
  defaultRoutingConfig,
  healthRecordKind,
  healthSnapshotOf,
  parseHealthSnapshot,
  parseRoutingConfig,
  patchRoutingConfig,
  writeRoutingConfig,
} from '@tapio/routing';
import type { RoutingConfig } from '@tapio/routing';
import { connectProducer, instanceName } from '@tapio/runtime';
import type { RunningService, ServiceContext } from '@tapio/runtime';
import { startStatusServer } from './status-page';
import { WebhookNotifier } from './webhook';
import type { RolloutNotification } from './webhook';

export { WebhookNotifier } from './webhook';
export type { RolloutNotification, WebhookOptions } from './webhook';

export interface RolloutControllerOptions {
  /** Defaults: config.topics.control / config.topics.health. */
  controlTopic?: string;
  healthTopic?: string;
  /** Default: config.groups.rolloutController (tapio-rollout-controller). */
  groupId?: string;
  /** Default: config.rollout.statusPort. */
  statusPort?: number;
  /** How long start-up waits for the health consumer to join (so that start returns ready). Default 30 s. */
  joinTimeoutMs?: number;
}

interface PendingCommand {
  offset: string;
  command: RolloutCommand;
}

export async function startRolloutController(
  ctx: ServiceContext,
  options: RolloutControllerOptions = {},
): Promise<RunningService> {
  const { config, logger } = ctx;
  const settings = config.rollout;
  const controlTopic = options.controlTopic ?? config.topics.control;
  const healthTopic = options.healthTopic ?? config.topics.health;
  const groupId = options.groupId ?? config.groups.rolloutController;
  const instance = instanceName(ctx.name);
  const healthGroup = `${groupId}-health-${randomBytes(5).toString('hex')}`;

  const registers = [ctx.metrics];
  const stageGauge = new Gauge({
    name: 'tapio_rollout_stage',
    help: 'Current rollout stage, 1-based (0: no rollout running)',
    registers,
  });
  const percentageGauge = new Gauge({
    name: 'tapio_rollout_v2_percentage',
    help: 'V2 percentage the rollout asks of the routing config',
    registers,
  });
  const rollbacks = new Counter({
    name: 'tapio_rollback_triggered_total',
    help: 'Rollbacks: cause breach (automatic) or abort (an operator)',
    labelNames: ['cause'],
    registers,
  });
  const decisions = new Counter({
    name: 'tapio_rollout_decisions_total',
    help: 'Evaluations of the active controller, by decision',
    labelNames: ['decision'],
    registers,
  });
  const activeGauge = new Gauge({
    name: 'tapio_rollout_controller_active',
    help: '1 on the controller that acts, 0 on standbys',
    registers,
  });
  const invalidRecords = new Counter({
    name: 'tapio_rollout_invalid_records_total',
    help: 'Control or health records the controller could not read, by topic',
    labelNames: ['topic'],
    registers,
  });
  const webhookFailures = new Counter({
    name: 'tapio_rollout_webhook_failures_total',
    help: 'Rollout notifications not delivered after all attempts',
    registers,
  });

  const window = new SnapshotWindow(settings.snapshotWindowMs);
  const webhook = new WebhookNotifier({
    url: settings.webhookUrl,
    authorization: settings.webhookAuthorization,
    logger,
    onFailure: () => webhookFailures.inc(),
  });

  let state: RolloutState = idleState();
  let routing: RoutingConfig | null = null;
  let persistedRevision = 0;
  let releaseBreaker = false;
  let lastEvaluation: { atMs: number; decision: Decision; figures: Figures } | null = null;
  let lastError: string | undefined;

  // Leadership and catch-up of the control topic.
  let active = false;
  let caughtUp = false;
  let catchUpEnd: Promise<bigint | null> = Promise.resolve(null);
  let catchUpState: RolloutState | null = null;
  let catchUpCommands: PendingCommand[] = [];

  const producer = await connectProducer(ctx);
  const admin = ctx.kafka.admin();
  await admin.connect();

  // --- one lane for every change of state: commands, evaluations, take-over -----------------------
  let lane: Promise<void> = Promise.resolve();
  const serial = (what: string, fn: () => Promise<void>): Promise<void> => {
    lane = lane.then(fn).catch((err: unknown) => {
      lastError = `${errorCode(err)}: ${(err as Error).message}`;
      logger.error({ err }, `rollout controller: ${what} failed`);
    });
    return lane;
  };

  const updateGauges = (): void => {
    stageGauge.set(isActive(state.status) || state.status === 'completed' ? state.stageIndex + 1 : 0);
    percentageGauge.set(targetPercentage(state) ?? 0);
    activeGauge.set(active && caughtUp ? 1 : 0);
  };

  const notification = (event: RolloutNotification['event'], reason: string, extra: object = {}): void => {
    webhook.notify({
      event,
      rolloutId: state.id,
      status: state.status,
      stage: state.stageIndex + 1,
      stages: state.stages.length,
      v2Percentage: targetPercentage(state) ?? 0,
      reason,
      at: new Date().toISOString(),
      ...extra,
    });
  };

  /** Makes the routing config say what the state asks, then stores the state if it changed. */
  const sync = async (): Promise<void> => {
    const current = routing ?? defaultRoutingConfig(config);
    const pct = targetPercentage(state);
    // Without a document on the topic the routers run on their own config's defaults: make it explicit.
    const change =
      routingChange(state, current, { forceBreaker: settings.forceBreakerOnRollback, releaseBreaker }) ??
      (routing === null && pct !== null ? { strategy: 'progressive' as const, v2Percentage: pct } : null);
    if (change !== null) {
      const written = await writeRoutingConfig(
        producer,
        controlTopic,
        patchRoutingConfig(current, change as unknown as Record<string, unknown>),
      );
      if (routing === null || written.epoch > routing.epoch) routing = written;
      logger.info(
        {
          epoch: written.epoch,
          v2Percentage: written.v2Percentage,
          breaker: written.breaker.mode,
          status: state.status,
        },
        'routing config written',
      );
    }
    releaseBreaker = false;
    if (state.revision > persistedRevision) {
      const revision = state.revision;
      await writeRolloutState(producer, controlTopic, state);
      persistedRevision = revision;
    }
    updateGauges();
  };

  const onCommand = async (pending: PendingCommand): Promise<void> => {
    const before = state;
    const outcome = applyCommand(state, pending.command, Date.now(), pending.offset);
    state = outcome.state;
    const { command, by } = pending.command;
    logger.info(
      { command, by, accepted: outcome.accepted, status: state.status, stage: state.stageIndex + 1 },
      `rollout command ${command}: ${outcome.reason}`,
    );
    if (outcome.accepted) {
      if (command === 'start' || command === 'retry') releaseBreaker = true;
      if (command === 'abort') rollbacks.inc({ cause: 'abort' });
    }
    await sync();
    if (!outcome.accepted) return;
    if (command === 'abort') notification('rollback', outcome.reason, { cause: 'abort', by });
    else if (state.status === 'completed' && before.status !== 'completed') notification('completed', outcome.reason);
    else if (state.stageIndex !== before.stageIndex || command === 'start' || command === 'retry')
      notification('stage-changed', outcome.reason, { by });
  };

  const tick = async (): Promise<void> => {
    if (!active || !caughtUp) return;
    const nowMs = Date.now();
    window.prune(nowMs);
    const figures = window.figures(state.stageStartedAtMs, nowMs);
    const before = state;
    const ev = evaluate(state, figures, nowMs);
    if (ev.decision.decision !== 'none') {
      lastEvaluation = { atMs: nowMs, decision: ev.decision, figures };
      decisions.inc({ decision: ev.decision.decision });
    }
    state = ev.state;
    if (ev.decision.decision === 'rollback') {
      rollbacks.inc({ cause: 'breach' });
      logger.warn({ stage: before.stageIndex + 1, reason: ev.decision.reason }, 'rollout rolled back');
    } else if (ev.decision.decision === 'advance') {
      logger.info({ stage: state.stageIndex + 1, reason: ev.decision.reason }, 'rollout advanced');
    }
    await sync();
    switch (ev.decision.decision) {
      case 'rollback':
        notification('rollback', ev.decision.reason, { cause: 'breach', criteria: ev.decision.criteria });
        break;
      case 'advance':
        notification('stage-changed', ev.decision.reason, { criteria: ev.decision.criteria });
        break;
      case 'complete':
        if (ev.changed) notification('completed', ev.decision.reason, { criteria: ev.decision.criteria });
        break;
      default:
    }
  };

  const takeOver = async (): Promise<void> => {
    state = catchUpState ?? idleState();
    persistedRevision = state.revision;
    const after = state.lastCommandOffset === null ? -1n : BigInt(state.lastCommandOffset);
    const pending = catchUpCommands.filter((c) => BigInt(c.offset) > after);
    catchUpState = null;
    catchUpCommands = [];
    logger.info(
      { status: state.status, stage: state.stageIndex + 1, pendingCommands: pending.length, epoch: routing?.epoch },
      'rollout controller active',
    );
    for (const c of pending) await onCommand(c);
    // The last controller may have stopped between storing the state and writing the routing config.
    await sync();
  };

  // --- the control topic: leadership, state, routing config, commands ----------------------------
  const onControl = async (message: KafkaMessage): Promise<void> => {
    const key = message.key?.toString();
    const end = await catchUpEnd;
    try {
      if (key === ROUTING_CONTROL_KEY) {
        const doc = parseRoutingConfig(message.value);
        if (routing === null || doc.epoch > routing.epoch) routing = doc;
      } else if (key === ROLLOUT_STATE_KEY) {
        // After the catch-up the controller's own state is the newest; its writes come back here.
        if (!caughtUp) catchUpState = parseRolloutState(message.value);
      } else if (key === ROLLOUT_COMMAND_KEY) {
        const pending = { offset: message.offset, command: parseRolloutCommand(message.value) };
        if (caughtUp) void serial('command', () => onCommand(pending));
        else catchUpCommands.push(pending);
      }
    } catch (err) {
      invalidRecords.inc({ topic: 'control' });
      logger.warn(
        { key, offset: message.offset, code: errorCode(err) },
        `control record skipped: ${(err as Error).message}`,
      );
    }
    if (!caughtUp && active && end !== null && BigInt(message.offset) >= end) {
      caughtUp = true;
      void serial('take-over', takeOver);
    }
  };

  const control = ctx.kafka.consumer({
    groupId,
    maxWaitTimeInMs: 100,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    heartbeatInterval: config.kafka.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
  });
  let joined!: () => void;
  const controlJoined = new Promise<void>((resolve) => (joined = resolve));
  control.on(control.events.REBALANCING, () => {
    if (active) logger.info('rollout controller: rebalancing, standing by');
    active = false;
    caughtUp = false;
    updateGauges();
  });
  control.on(control.events.GROUP_JOIN, (event) => {
    const partitions = event.payload.memberAssignment[controlTopic] ?? [];
    active = partitions.length > 0;
    caughtUp = false;
    catchUpState = null;
    catchUpCommands = [];
    if (active) {
      // Read the whole topic again: the group never commits, and this member may have held the
      // partition before, at a later position.
      for (const partition of partitions) control.seek({ topic: controlTopic, partition, offset: '0' });
      catchUpEnd = admin.fetchTopicOffsets(controlTopic).then((ends) => {
        const p = ends.find((e) => e.partition === partitions[0]);
        if (p === undefined || p.high === p.low) {
          caughtUp = true;
          void serial('take-over', takeOver);
          return null;
        }
        return BigInt(p.high) - 1n;
      });
    } else {
      catchUpEnd = Promise.resolve(null);
      logger.info('rollout controller: standby (another member holds the control partition)');
    }
    updateGauges();
    joined();
  });
  await control.connect();
  await control.subscribe({ topic: controlTopic, fromBeginning: true });
  await control.run({ autoCommit: false, eachMessage: ({ message }) => onControl(message) });

  // --- the health topic: the sliding window ------------------------------------------------------
  const health = ctx.kafka.consumer({
    groupId: healthGroup,
    maxWaitTimeInMs: 100,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    heartbeatInterval: config.kafka.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
  });
  let healthJoined!: () => void;
  const healthReady = new Promise<void>((resolve) => (healthJoined = resolve));
  health.on(health.events.GROUP_JOIN, () => healthJoined());
  await health.connect();
  // From the end: old snapshots say nothing about V2 now.
  await health.subscribe({ topic: healthTopic, fromBeginning: false });
  await health.run({
    autoCommit: false,
    eachMessage: ({ message }) => {
      const nowMs = Date.now();
      let value: unknown;
      try {
        value = JSON.parse((message.value ?? '').toString());
      } catch {
        value = undefined;
      }
      const counts = comparisonCountsOf(value);
      if (healthRecordKind(value) === 'router-frontier') {
        // The routers' event-time frontiers, for each other.
      } else if (counts !== undefined) {
        window.addComparison(message.key?.toString() ?? 'comparator', counts, nowMs);
      } else {
        try {
          window.addHealth(value === undefined ? parseHealthSnapshot(message.value) : healthSnapshotOf(value), nowMs);
        } catch (err) {
          invalidRecords.inc({ topic: 'health' });
          logger.debug({ offset: message.offset, code: errorCode(err) }, 'health record skipped');
        }
      }
      return Promise.resolve();
    },
  });

  const joinTimeoutMs = options.joinTimeoutMs ?? 30_000;
  let joinTimer: NodeJS.Timeout | undefined;
  const ready = await Promise.race([
    Promise.all([healthReady, controlJoined]).then(() => true),
    new Promise<boolean>((resolve) => (joinTimer = setTimeout(() => resolve(false), joinTimeoutMs))),
  ]);
  clearTimeout(joinTimer);
  if (!ready) logger.warn({ joinTimeoutMs }, 'consumer groups not joined in time; going on');

  let queued = false;
  const evaluator = setInterval(() => {
    if (queued) return;
    queued = true;
    void serial('evaluation', async () => {
      queued = false;
      await tick();
    });
  }, settings.evaluateIntervalMs);

  // --- the status page ---------------------------------------------------------------------------
  const status = (): unknown => {
    const nowMs = Date.now();
    const stage = state.stages[state.stageIndex];
    return {
      instance,
      active: active && caughtUp,
      now: nowMs,
      rollout: state,
      targetPercentage: targetPercentage(state),
      stage:
        stage === undefined ? null : { ...stage, index: state.stageIndex, elapsedMs: nowMs - state.stageStartedAtMs },
      live: lastEvaluation,
      routing:
        routing === null
          ? null
          : {
              epoch: routing.epoch,
              strategy: routing.strategy,
              v2Percentage: routing.v2Percentage,
              breaker: routing.breaker.mode,
              split: categorySplit(routing),
            },
      engines: { v1: window.engine('v1', 0, nowMs), v2: window.engine('v2', 0, nowMs) },
      comparison: window.comparison(0, nowMs),
      windowMs: settings.snapshotWindowMs,
    };
  };
  const statusServer = await startStatusServer({
    host: config.http.host,
    port: options.statusPort ?? settings.statusPort,
    token: settings.uiToken,
    logger,
    status,
    command: (command: CommandName) =>
      sendRolloutCommand(producer, controlTopic, { command, at: Date.now(), by: 'status-page' }),
  });
  logger.info(
    { statusPage: statusServer.url, controlTopic, healthTopic, groupId, webhook: webhook.shownUrl },
    'rollout controller started',
  );

  return {
    health: () => ({
      ok: true,
      active: active && caughtUp,
      standby: !active,
      status: state.status,
      stage: state.stageIndex + 1,
      targetPercentage: targetPercentage(state),
      epoch: routing?.epoch ?? null,
      statusUrl: statusServer.url,
      lastError,
    }),
    async stop() {
      clearInterval(evaluator);
      await lane;
      await statusServer.close();
      await webhook.close();
      // Leaving the group hands the control partition to a standby at once.
      await Promise.all([control.disconnect(), health.disconnect()]);
      await producer.disconnect();
      await admin.deleteGroups([healthGroup]).catch(() => undefined);
      await admin.disconnect();
    },
  };
}
