/** `tapio`: the command-line tool. Each command is a thin shell over the packages. */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { loadConfig } from '@tapio/config';
import type { TapioConfig } from '@tapio/config';
import { TapioError } from '@tapio/errors';
import type { Event } from '@tapio/events';
import { createKafka, ensureTopics, topicSpecs } from '@tapio/kafka';
import { generateStream, listScenarios } from '@tapio/scenarios';
import { consumeTopic } from './commands/consume';
import { generate, resolveScenarios } from './commands/generate';
import { produceFile, produceScenarios } from './commands/produce';
import { compareEngines, formatReport } from './commands/compare';
import { demoRunEnv, demoRunId, runDemo } from './commands/demo';
import {
  analyzeRules,
  formatRouting,
  loadRouting,
  parseAssignments,
  patchRoutingConfig,
  saveRouting,
} from './commands/route';
import { engineFactory, readEvents, replayToLines, testRule, writeTo } from './commands/replay';
import { registerRolloutCommands } from './commands/rollout';
import { VERIFY_EXIT, formatVerifyReport, runVerify } from './commands/verify';
import type { VerifyReport } from './commands/verify';

export { demoRunEnv, demoRunId } from './commands/demo';

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: Readonly<Record<string, string | undefined>>;
  /** Resolves on SIGINT/SIGTERM, for commands that follow a topic or run until stopped. */
  interrupted: Promise<void>;
}

const defaultIo = (): Io => ({
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  interrupted: new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  }),
});

function number(name: string, check: (n: number) => boolean, expected: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || !check(n)) {
      throw new InvalidArgumentError(`${name} must be ${expected}, got '${raw}'`);
    }
    return n;
  };
}
const positiveInt = (name: string) => number(name, (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer');
const nonNegativeInt = (name: string) => number(name, (n) => Number.isSafeInteger(n) && n >= 0, 'an integer >= 0');
const positive = (name: string) => number(name, (n) => n > 0, 'a positive number');
const share = (name: string) => number(name, (n) => n >= 0 && n <= 1, 'a number between 0 and 1');

function scenarioList(raw: string): string[] | 'all' {
  try {
    return resolveScenarios(raw);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function configFrom(cmd: Command, io: Io): Readonly<TapioConfig> {
  const { config } = cmd.optsWithGlobals<{ config?: string }>();
  return loadConfig({ file: config, env: io.env });
}

function abortOn(interrupted: Promise<void>): AbortSignal {
  const controller = new AbortController();
  void interrupted.then(() => controller.abort());
  return controller.signal;
}

export function buildProgram(io: Io, setExit: (code: number) => void): Command {
  const program = new Command('tapio')
    .description('Tapio hybrid correlation pipeline tools')
    .option('-c, --config <file>', 'YAML config file (default: $TAPIO_CONFIG, else built-in defaults)')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .addHelpText(
      'after',
      '\n`tapio verify -i events.jsonl` checks a rule change or a deployment: the file through a private pipeline must\n' +
        'give what `tapio replay` gives, incident for incident (ARCHITECTURE.md, "Pipeline guarantees").\n',
    );
  const collect = (value: string, previous: string[]): string[] => [...previous, value];

  const topics = program.command('topics').description('manage the pipeline topics');
  topics
    .command('ensure')
    .description('create every pipeline topic that is missing (safe to repeat)')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = configFrom(cmd, io);
      const admin = createKafka(config).admin();
      await admin.connect();
      try {
        const outcome = await ensureTopics(admin, topicSpecs(config));
        for (const o of outcome) io.stdout.write(`${o.action.padEnd(16)} ${o.topic} (${o.partitions} partitions)\n`);
      } finally {
        await admin.disconnect();
      }
      setExit(0);
    });

  program
    .command('scenarios')
    .description('list the synthetic incident and near-miss scenarios')
    .action(() => {
      for (const s of listScenarios()) io.stdout.write(`${s.name.padEnd(44)} ${s.kind.padEnd(10)} ${s.description}\n`);
      setExit(0);
    });

  program
    .command('generate')
    .description('write scenario and noise events as JSON lines to stdout (no Kafka)')
    .requiredOption('-s, --scenario <names>', 'scenario names or rule ids, comma-separated, or all', scenarioList)
    .option('--seed <n>', 'random seed', nonNegativeInt('--seed'), 1)
    .option('--noise <n>', 'background noise events', nonNegativeInt('--noise'), 0)
    .option('--incidents <n>', 'instances of each scenario', positiveInt('--incidents'), 1)
    .option(
      '--start-ms <ms>',
      'event time of the stream start (epoch ms)',
      nonNegativeInt('--start-ms'),
      1_767_225_600_000,
    )
    .option(
      '--out-of-order-ms <ms>',
      'max displacement of noise in delivery order (<= 60000)',
      nonNegativeInt('--out-of-order-ms'),
      0,
    )
    .option('--late-share <r>', 'share of noise delivered later than the allowed lateness', share('--late-share'), 0)
    .option('--expect <file>', 'write the expected detections as JSON lines to this file')
    .action(
      async (opts: {
        scenario: string[] | 'all';
        seed: number;
        noise: number;
        incidents: number;
        startMs: number;
        outOfOrderMs: number;
        lateShare: number;
        expect?: string;
      }) => {
        const out = await generate(
          {
            scenarios: opts.scenario,
            seed: opts.seed,
            noise: opts.noise,
            startMs: opts.startMs,
            incidentsPerScenario: opts.incidents,
            outOfOrderMs: opts.outOfOrderMs,
            lateShare: opts.lateShare,
            expect: opts.expect,
          },
          io.stdout,
        );
        io.stderr.write(`tapio generate: ${out.events} events, ${out.expected} expected detections\n`);
        setExit(0);
      },
    );

  program
    .command('produce')
    .description('produce events to a topic, Avro-encoded and keyed by source entity: JSON lines, or --scenario')
    .argument('[file]', 'JSON-lines file; - or nothing reads stdin')
    .option('-t, --topic <topic>', 'topic (default: the configured tapio.events)')
    .option('--skip-invalid', 'report invalid lines and go on (default: stop at the first)', false)
    .option('--batch-size <n>', 'events per produce request', positiveInt('--batch-size'), 1000)
    .option('--no-progress', 'no progress bar, even on a terminal')
    .option('-s, --scenario <names>', 'produce generated scenarios and noise instead of a file', scenarioList)
    .option('--rate <n>', 'with --scenario: events per second', positive('--rate'), 1000)
    .option('--duration <s>', 'with --scenario: seconds to run', positive('--duration'), 10)
    .option('--seed <n>', 'with --scenario: random seed', nonNegativeInt('--seed'), 1)
    .option('--noise-ratio <r>', 'with --scenario: share of noise among the events', share('--noise-ratio'), 0.9)
    .action(
      async (
        file: string | undefined,
        opts: {
          topic?: string;
          skipInvalid: boolean;
          batchSize: number;
          progress: boolean;
          scenario?: string[] | 'all';
          rate: number;
          duration: number;
          seed: number;
          noiseRatio: number;
        },
        cmd: Command,
      ) => {
        const config = configFrom(cmd, io);
        const topic = opts.topic ?? config.topics.events;
        if (opts.scenario !== undefined) {
          if (file !== undefined) throw new InvalidArgumentError('give either a file or --scenario, not both');
          const s = await produceScenarios(
            config,
            {
              topic,
              scenarios: opts.scenario,
              rate: opts.rate,
              durationMs: opts.duration * 1000,
              seed: opts.seed,
              noiseRatio: opts.noiseRatio,
              startMs: Date.now(),
            },
            io,
            abortOn(io.interrupted),
          );
          io.stderr.write(
            `tapio produce: ${s.sent} events (${s.incidents} incidents) to ${topic} in ${s.seconds.toFixed(1)} s, ` +
              `${Math.round(s.rate)} events/s in ${s.batches} batches\n`,
          );
          setExit(0);
          return;
        }
        const summary = await produceFile(config, file, { ...opts, topic }, io);
        const rate = summary.seconds > 0 ? Math.round(summary.produced / summary.seconds) : summary.produced;
        io.stderr.write(
          `tapio produce: ${summary.produced} events to ${topic}, ${summary.invalid} invalid lines skipped, ` +
            `${summary.seconds.toFixed(2)} s (${rate} events/s)\n`,
        );
        setExit(0);
      },
    );

  program
    .command('consume')
    .description("decode any of the pipeline's topics to JSON lines on stdout")
    .argument('<topic>', 'topic to read')
    .option('--from-beginning', 'read from the earliest offset (then stop at the end unless --follow)', false)
    .option('--follow', 'keep waiting for new records (implied without --from-beginning)', false)
    .option('--max <n>', 'stop after n records', positiveInt('--max'))
    .option('--meta', 'wrap each value with topic, partition, offset, key and headers', false)
    .action(
      async (
        topic: string,
        opts: { fromBeginning: boolean; follow: boolean; max?: number; meta: boolean },
        cmd: Command,
      ) => {
        const config = configFrom(cmd, io);
        const count = await consumeTopic(config, topic, opts, io);
        io.stderr.write(`tapio consume: ${count} records from ${topic}\n`);
        setExit(0);
      },
    );

  program
    .command('replay')
    .description('evaluate JSON-lines events offline (no Kafka) and write one JSON result per line')
    .requiredOption('-i, --input <file>', 'JSON-lines events; - reads stdin')
    .option('-e, --engine <name>', 'v1 or v2', 'v1')
    .option('-o, --output <file>', 'results file (default stdout)')
    .option('--skip-invalid', 'report invalid lines and go on', false)
    .action(async (opts: { input: string; engine: string; output?: string; skipInvalid: boolean }, cmd: Command) => {
      const config = configFrom(cmd, io);
      const make = engineFactory(opts.engine);
      const events = await readEvents(opts.input, opts.skipInvalid, io.stderr);
      const engine = make(config.correlation);
      const s = await writeTo(opts.output, io.stdout, (out) => replayToLines(engine, events, out));
      io.stderr.write(
        `tapio replay: engine ${opts.engine}, ${s.events} events, ${s.results} results, ${s.seconds.toFixed(2)} s ` +
          `(${Math.round(s.events / Math.max(s.seconds, 1e-9))} events/s)\n`,
      );
      setExit(0);
    });

  program
    .command('compare')
    .description('run the same encoded records through V1 and V2 offline: throughput, latency, memory, mismatches')
    .option('-i, --input <file>', 'JSON-lines events')
    .option('-s, --scenario <names>', 'generated scenarios instead of a file', scenarioList)
    .option('--events <n>', 'with --scenario: background noise events', nonNegativeInt('--events'), 100_000)
    .option('--seed <n>', 'with --scenario: random seed', nonNegativeInt('--seed'), 1)
    .option('--json', 'print the report as JSON', false)
    .action(
      async (
        opts: { input?: string; scenario?: string[] | 'all'; events: number; seed: number; json: boolean },
        cmd: Command,
      ) => {
        const config = configFrom(cmd, io);
        if ((opts.input === undefined) === (opts.scenario === undefined)) {
          throw new InvalidArgumentError('give exactly one of --input or --scenario');
        }
        const events =
          opts.input !== undefined
            ? await readEvents(opts.input, false, io.stderr)
            : generateStream({
                seed: opts.seed,
                startMs: 1_767_225_600_000,
                scenarios: opts.scenario ?? 'all',
                incidentsPerScenario: 5,
                noiseEvents: opts.events,
                outOfOrderMs: 5_000,
              }).events;
        const report = compareEngines(events, config.correlation.allowedLatenessMs);
        io.stdout.write((opts.json ? JSON.stringify(report, null, 2) : formatReport(report)) + '\n');
        const m = report.mismatches;
        setExit(m.missing + m.extra + m.differing === 0 ? 0 : 1);
      },
    );

  program
    .command('verify')
    .description(
      'conformance check: the file through a private pipeline (own topics and groups) and through the replay; ' +
        'exit 1 unless the results are equal incident for incident',
    )
    .requiredOption('-i, --input <file>', 'JSON-lines events, as for produce and replay')
    .option(
      '--v2-percentage <n>',
      "share of scope keys on V2, 0-100 (default: the config's hybrid.v2_percentage; its feature flags still pin categories)",
      number('--v2-percentage', (n) => n >= 0 && n <= 100, 'in 0..100'),
    )
    .option('--category <c=engine>', 'pin a category (repeatable), e.g. network=v2', collect, [])
    .option('--routers <n>', 'router processes', positiveInt('--routers'), 1)
    .option('--v1-consumers <n>', 'correlator-v1 processes', positiveInt('--v1-consumers'), 1)
    .option('--v2-consumers <n>', 'correlator-v2 processes', positiveInt('--v2-consumers'), 1)
    .option(
      '--partitions <n>',
      "event topics' partitions (default: topics.eventPartitions)",
      positiveInt('--partitions'),
    )
    .option('--backlog', 'produce the whole file first, then start the routers', false)
    .option('--rate <n>', 'events per second when producing live (default: as fast as possible)', positive('--rate'))
    .option('--replay-engine <name>', 'v1, v2, or both (then they must agree too)', 'both')
    .option('--replay-config <file>', "the replay's config, when it should differ from the pipeline's")
    .option(
      '--timeout <s>',
      'give up after this many seconds (exit 3, with what was pending)',
      positive('--timeout'),
      300,
    )
    .option(
      '--quiet <s>',
      'seconds without a new result, once every lag is 0, before the run is done',
      positive('--quiet'),
      3,
    )
    .option('--skip-invalid', 'leave invalid lines out of both runs, reported on stderr', false)
    .option('--show <n>', 'differences listed', nonNegativeInt('--show'), 10)
    .option('--keep', "keep the run's topics and service logs", false)
    .option('--json', 'print the report as JSON', false)
    .addHelpText(
      'after',
      '\nExit: 0 equal; 1 missing, extra or differing incidents (or the replay engines disagree); 2 bad input;\n' +
        '3 the run did not complete (timeout, a service exited, interrupted).\n' +
        'Redelivered results (same id) are collapsed and counted as duplicates, not as differences.\n',
    )
    .action(
      async (
        opts: {
          input: string;
          v2Percentage?: number;
          category: string[];
          routers: number;
          v1Consumers: number;
          v2Consumers: number;
          partitions?: number;
          backlog: boolean;
          rate?: number;
          replayEngine: string;
          replayConfig?: string;
          timeout: number;
          quiet: number;
          skipInvalid: boolean;
          show: number;
          keep: boolean;
          json: boolean;
        },
        cmd: Command,
      ) => {
        const config = configFrom(cmd, io);
        const engines = { v1: ['v1'], v2: ['v2'], both: ['v1', 'v2'] } as const;
        const replayEngines = (engines as Record<string, readonly ('v1' | 'v2')[] | undefined>)[opts.replayEngine];
        if (replayEngines === undefined) throw new InvalidArgumentError('--replay-engine must be v1, v2 or both');
        if (opts.backlog && opts.rate !== undefined)
          throw new InvalidArgumentError('--rate applies to live runs, not --backlog');
        let categories: Record<string, 'v1' | 'v2'>;
        try {
          categories = parseAssignments(opts.category, '--category');
        } catch (err) {
          throw new InvalidArgumentError((err as Error).message);
        }
        const replayConfig =
          opts.replayConfig === undefined
            ? undefined
            : { file: opts.replayConfig, config: loadConfig({ file: opts.replayConfig, env: io.env }) };
        // The whole file is read and checked before anything is created or produced.
        let events: Event[];
        try {
          events = await readEvents(opts.input, opts.skipInvalid, io.stderr);
        } catch (err) {
          const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
          if (!(err instanceof TapioError) && !missing) throw err;
          io.stderr.write(
            `tapio verify: ${err instanceof TapioError ? `${err.code}: ${err.message}` : `cannot read ${opts.input}`}\n` +
              'tapio verify: nothing produced\n',
          );
          setExit(VERIFY_EXIT.badInput);
          return;
        }
        let report: VerifyReport;
        try {
          report = await runVerify(
            config,
            {
              input: opts.input,
              events,
              v2Percentage: opts.v2Percentage,
              categories,
              routers: opts.routers,
              v1Consumers: opts.v1Consumers,
              v2Consumers: opts.v2Consumers,
              partitions: opts.partitions,
              backlog: opts.backlog,
              rate: opts.rate,
              replayEngines,
              replayConfig,
              timeoutMs: opts.timeout * 1000,
              quietMs: opts.quiet * 1000,
              keep: opts.keep,
              configFile: cmd.optsWithGlobals<{ config?: string }>().config,
            },
            { env: io.env, progress: (line) => io.stderr.write(line + '\n'), interrupted: io.interrupted },
          );
        } catch (err) {
          // Exit 1 means "the results differ"; a broker or registry failure is a run that did not complete.
          const code = err instanceof TapioError ? `${err.code}: ` : '';
          io.stderr.write(`tapio verify: the run did not complete: ${code}${(err as Error).message}\n`);
          setExit(VERIFY_EXIT.incomplete);
          return;
        }
        io.stdout.write((opts.json ? JSON.stringify(report, null, 2) : formatVerifyReport(report, opts.show)) + '\n');
        setExit(report.exitCode);
      },
    );

  const route = program.command('route').description('read and change the routing config on the control topic');
  route
    .command('show')
    .description('the routing document in force: strategy, split per category, overrides, shadow, breaker')
    .option('--json', 'print the document as JSON', false)
    .action(async (opts: { json: boolean }, cmd: Command) => {
      const config = configFrom(cmd, io);
      const loaded = await loadRouting(config);
      io.stdout.write((opts.json ? JSON.stringify(loaded.doc, null, 2) : formatRouting(loaded)) + '\n');
      setExit(0);
    });
  route
    .command('set')
    .description('change the routing document (written as the next epoch; routers apply it within a second)')
    .option(
      '--percentage <n>',
      'share of scope keys on V2, 0-100',
      number('--percentage', (n) => n >= 0 && n <= 100, 'in 0..100'),
    )
    .option('--strategy <name>', 'percentage | load | time | progressive')
    .option('--category <c=engine>', 'pin a category (repeatable), e.g. network=v2', collect, [])
    .option('--namespace <ns=engine>', 'route a namespace (repeatable)', collect, [])
    .option('--node <node=engine>', 'route a node (repeatable)', collect, [])
    .option('--pod <pod=engine>', 'route a pod (repeatable)', collect, [])
    .option('--service <svc=engine>', 'route a service (repeatable)', collect, [])
    .option('--clear-overrides', 'remove every category and entity override first', false)
    .option('--shadow <on|off>', 'copy V1 records to the V2 shadow')
    .option(
      '--shadow-percentage <n>',
      'share of V1 records copied',
      number('--shadow-percentage', (n) => n >= 0 && n <= 100, 'in 0..100'),
    )
    .option('--breaker <mode>', 'auto | forced-open | disabled')
    .option(
      '--load-threshold <n>',
      'load strategy: V1 lag above which new work goes to V2',
      nonNegativeInt('--load-threshold'),
    )
    .action(
      async (
        opts: {
          percentage?: number;
          strategy?: string;
          category: string[];
          namespace: string[];
          node: string[];
          pod: string[];
          service: string[];
          clearOverrides: boolean;
          shadow?: string;
          shadowPercentage?: number;
          breaker?: string;
          loadThreshold?: number;
        },
        cmd: Command,
      ) => {
        const config = configFrom(cmd, io);
        const loaded = await loadRouting(config);
        let doc = loaded.doc;
        if (opts.clearOverrides) {
          doc = { ...doc, categoryOverrides: {}, entityOverrides: {} };
        }
        const patch: Record<string, unknown> = {};
        try {
          if (opts.percentage !== undefined) patch['v2Percentage'] = opts.percentage;
          if (opts.strategy !== undefined) patch['strategy'] = opts.strategy;
          if (opts.category.length > 0) patch['categoryOverrides'] = parseAssignments(opts.category, '--category');
          const entities: Record<string, unknown> = {};
          for (const kind of ['namespace', 'node', 'pod', 'service'] as const) {
            if (opts[kind].length > 0) entities[kind] = parseAssignments(opts[kind], `--${kind}`);
          }
          if (Object.keys(entities).length > 0) patch['entityOverrides'] = entities;
        } catch (err) {
          throw new InvalidArgumentError((err as Error).message);
        }
        const shadow: Record<string, unknown> = {};
        if (opts.shadow !== undefined) {
          if (opts.shadow !== 'on' && opts.shadow !== 'off')
            throw new InvalidArgumentError('--shadow must be on or off');
          shadow['enabled'] = opts.shadow === 'on';
        }
        if (opts.shadowPercentage !== undefined) shadow['percentage'] = opts.shadowPercentage;
        if (Object.keys(shadow).length > 0) patch['shadow'] = shadow;
        if (opts.breaker !== undefined) patch['breaker'] = { mode: opts.breaker };
        if (opts.loadThreshold !== undefined) patch['load'] = { v1LagThreshold: opts.loadThreshold };
        const written = await saveRouting(config, patchRoutingConfig(doc, patch));
        io.stdout.write(formatRouting({ doc: written, stored: true }) + '\n');
        setExit(0);
      },
    );

  const migrate = program.command('migrate').description('rule migration tools');
  migrate
    .command('rules')
    .description('route a rule category to an engine (writes a category override)')
    .requiredOption('--category <c>', 'resource | performance | reliability | network | storage')
    .requiredOption('--to <engine>', 'v1 or v2')
    .action(async (opts: { category: string; to: string }, cmd: Command) => {
      const config = configFrom(cmd, io);
      if (opts.to !== 'v1' && opts.to !== 'v2') throw new InvalidArgumentError('--to must be v1 or v2');
      const loaded = await loadRouting(config);
      const written = await saveRouting(
        config,
        patchRoutingConfig(loaded.doc, { categoryOverrides: { [opts.category]: opts.to } }),
      );
      io.stdout.write(`category ${opts.category} -> ${opts.to} (epoch ${written.epoch})\n`);
      setExit(0);
    });
  migrate
    .command('analyze-rules')
    .description('each rule with its category, scope, where it runs now, and V2 support')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = configFrom(cmd, io);
      const loaded = await loadRouting(config);
      io.stdout.write(analyzeRules(loaded.doc) + '\n');
      setExit(0);
    });
  migrate
    .command('test-rule')
    .description("run a rule's own scenarios (or the given events) through every available engine and compare")
    .argument('<rule-id>', 'e.g. memory-pressure-cascade')
    .option('-i, --input <file>', 'JSON-lines events instead of the rule scenarios')
    .action(async (ruleId: string, opts: { input?: string }, cmd: Command) => {
      const config = configFrom(cmd, io);
      const events = opts.input === undefined ? undefined : await readEvents(opts.input, false, io.stderr);
      const report = testRule(ruleId, config.correlation, events);
      io.stdout.write(report.lines.join('\n') + '\n');
      setExit(report.ok ? 0 : 1);
    });

  program
    .command('demo')
    .description('run every service as its own process on the local stack, fed by the collector, with a live view')
    .option('--duration <s>', 'stop after this many seconds (default: until Ctrl-C)', positive('--duration'))
    .option('--rate <n>', 'collector events per second', positive('--rate'), 2000)
    .option('--base-port <port>', 'first /metrics port; each service takes the next', positiveInt('--base-port'), 9470)
    .action(async (opts: { duration?: number; rate: number; basePort: number }, cmd: Command) => {
      const base = configFrom(cmd, io); // validate before starting anything
      // Topics, groups and dedup keys of this run only; they are deleted when the run stops.
      const runId = demoRunId();
      const file = cmd.optsWithGlobals<{ config?: string }>().config;
      // The services read the same config file (--config) as this command, plus the run's overrides.
      const runEnv = { ...io.env, ...(file === undefined ? {} : { TAPIO_CONFIG: file }), ...demoRunEnv(base, runId) };
      const config = loadConfig({ env: runEnv });
      const admin = createKafka(config).admin();
      await admin.connect();
      const specs = topicSpecs(config);
      try {
        await ensureTopics(admin, specs);
      } catch (err) {
        await admin.disconnect();
        throw err;
      }
      io.stdout.write(`demo run ${runId}: topics demo.${runId}.*, groups *-demo-${runId}\n`);
      const svc = (name: string, env: Record<string, string> = {}, dir = name) => ({
        name,
        entry: `services/${dir}/dist/main.js`,
        env,
      });
      const code = await runDemo({
        durationSeconds: opts.duration,
        rate: opts.rate,
        basePort: opts.basePort,
        env: runEnv,
        stdout: io.stdout,
        interrupted: io.interrupted,
        services: [
          svc('router'),
          svc('correlator-v1'),
          svc('correlator-v2'),
          svc('correlator-v2-shadow', { TAPIO_CORRELATOR__ROLE: 'shadow' }, 'correlator-v2'),
          svc('dedup'),
          svc('actions'),
          svc('comparator'),
          svc('rollout-controller'),
          svc('collector', { TAPIO_COLLECTOR__RATEPERSECOND: String(opts.rate) }),
        ],
      });
      try {
        await admin.deleteTopics({ topics: specs.map((t) => t.topic) });
        io.stdout.write(`deleted the run's topics (demo.${runId}.*)\n`);
      } catch (err) {
        io.stderr.write(`could not delete the run's topics demo.${runId}.*: ${(err as Error).message}\n`);
      } finally {
        await admin.disconnect();
      }
      setExit(code);
    });

  registerRolloutCommands(program, io, setExit, (cmd) => configFrom(cmd, io));

  return program;
}

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: readonly string[], io: Io = defaultIo()): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync([...argv]);
    return code;
  } catch (err) {
    // Thrown by an action (argument parsers' errors are reported by commander as CommanderError).
    if (err instanceof InvalidArgumentError) {
      io.stderr.write(`tapio: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof TapioError) {
      io.stderr.write(`tapio: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
