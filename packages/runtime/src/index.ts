/**
 * The lifecycle every service shares: one validated config (file plus environment), a pino logger,
 * a metrics registry served with /healthz, and a clean shutdown on SIGTERM/SIGINT (the service
 * finishes its batch, commits and leaves its group inside `stop`).
 */
import { Command } from 'commander';
import { loadConfig } from '@tapio/config';
import type { TapioConfig } from '@tapio/config';
import { TapioError } from '@tapio/errors';
import { createKafka } from '@tapio/kafka';
import type { Consumer, Kafka, Producer } from '@tapio/kafka';
import { createLogger, createMetricsRegistry, startObservabilityServer } from '@tapio/observability';
import type { HealthReport, Logger, ObservabilityServer } from '@tapio/observability';
import type { Registry } from 'prom-client';

export interface ServiceContext {
  readonly name: string;
  readonly config: Readonly<TapioConfig>;
  readonly logger: Logger;
  readonly metrics: Registry;
  readonly kafka: Kafka;
}

export interface RunningService {
  health(): HealthReport;
  /** Finish in-flight work, commit, leave the group, disconnect. */
  stop(): Promise<void>;
}

export type ServiceStart = (ctx: ServiceContext) => Promise<RunningService>;

export interface StartedService {
  readonly ctx: ServiceContext;
  readonly http: ObservabilityServer;
  readonly service: RunningService;
  shutdown(reason: string): Promise<void>;
}

export interface StartOptions {
  config: Readonly<TapioConfig>;
  logger?: Logger;
}

/** Starts a service in-process (what `runService` and the integration tests use). */
export async function startService(name: string, start: ServiceStart, options: StartOptions): Promise<StartedService> {
  const { config } = options;
  const logger = options.logger ?? createLogger(name, config.log.level);
  const metrics = createMetricsRegistry(name);
  const ctx: ServiceContext = { name, config, logger, metrics, kafka: createKafka(config, logger, `-${name}`) };
  const service = await start(ctx);
  const http = await startObservabilityServer({
    host: config.http.host,
    port: config.http.port,
    registry: metrics,
    health: () => service.health(),
    logger,
  });
  logger.info({ metrics: `${http.url}/metrics`, health: `${http.url}/healthz` }, `${name} started`);
  let stopping: Promise<void> | undefined;
  return {
    ctx,
    http,
    service,
    shutdown(reason: string) {
      stopping ??= (async () => {
        logger.info({ reason }, `${name} stopping`);
        try {
          await service.stop();
        } finally {
          await http.close();
        }
        logger.info(`${name} stopped`);
      })();
      return stopping;
    },
  };
}

/**
 * The main of a service process: parses `--config`, validates the config (a bad one stops start-up
 * with one message naming the key), starts, and shuts down cleanly on SIGTERM or SIGINT.
 */
export function runService(name: string, start: ServiceStart, argv: readonly string[] = process.argv): void {
  const program = new Command(name)
    .option('-c, --config <file>', 'YAML config file (default: $TAPIO_CONFIG, else built-in defaults)')
    .allowExcessArguments(false);
  program.parse([...argv]);
  const { config: file } = program.opts<{ config?: string }>();
  let config: Readonly<TapioConfig>;
  try {
    config = loadConfig({ file, env: process.env });
  } catch (err) {
    process.stderr.write(`${name}: ${err instanceof TapioError ? `${err.code}: ${err.message}` : String(err)}\n`);
    process.exit(2);
  }
  const logger = createLogger(name, config.log.level);
  startService(name, start, { config, logger }).then(
    (started) => {
      const onSignal = (signal: NodeJS.Signals): void => {
        started.shutdown(signal).then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err }, `${name} did not stop cleanly`);
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    },
    (err: unknown) => {
      logger.fatal({ err }, `${name} failed to start`);
      process.exit(1);
    },
  );
}

export { BackgroundCommitter } from './commit';
export { httpEndpoint, postOnce } from './http';
export type { HttpEndpoint, PostOutcome } from './http';
export { CoalescingSender } from './send';
export type { OutRecord, TopicRecords } from './send';
export { CallWindow, HealthReporter, consumerLag, instanceName, startEngineHealth } from './health';
export { ServiceProcesses, freePort } from './processes';
export type { ServiceProcess, ServiceProcessesOptions } from './processes';
export type { EngineHealthOptions, HealthReporterOptions } from './health';

/** The producer every pipeline service writes with: idempotent (acks=all), no topic auto-creation. */
export async function connectProducer(ctx: ServiceContext): Promise<Producer> {
  // kafkajs's idempotent producer keeps one request in flight per broker.
  const producer = ctx.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  return producer;
}

/** A connected group consumer with the configured session and heartbeat timing. */
export async function connectConsumer(ctx: ServiceContext, groupId: string): Promise<Consumer> {
  const consumer = ctx.kafka.consumer({
    groupId,
    sessionTimeout: ctx.config.kafka.sessionTimeoutMs,
    heartbeatInterval: ctx.config.kafka.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
  });
  await consumer.connect();
  return consumer;
}
