/** `tapio generate`: scenario and noise events as JSON lines, with the detections they should cause. */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { eventToJsonLine } from '@tapio/events';
import { expectedToJsonLine, generateStream, listScenarios } from '@tapio/scenarios';

export interface GenerateOptions {
  scenarios: string[] | 'all';
  seed: number;
  noise: number;
  startMs: number;
  incidentsPerScenario: number;
  outOfOrderMs: number;
  lateShare: number;
  expect?: string;
}

async function writeLines(out: NodeJS.WritableStream, lines: Iterable<string>): Promise<void> {
  for (const line of lines) {
    if (!out.write(line + '\n')) await once(out, 'drain');
  }
}

export async function generate(
  options: GenerateOptions,
  stdout: NodeJS.WritableStream,
): Promise<{ events: number; expected: number }> {
  const stream = generateStream({
    seed: options.seed,
    startMs: options.startMs,
    scenarios: options.scenarios,
    incidentsPerScenario: options.incidentsPerScenario,
    noiseEvents: options.noise,
    outOfOrderMs: options.outOfOrderMs,
    lateShare: options.lateShare,
  });
  await writeLines(
    stdout,
    (function* () {
      for (const e of stream.events) yield eventToJsonLine(e);
    })(),
  );
  if (options.expect !== undefined) {
    const file = createWriteStream(options.expect);
    await writeLines(file, stream.expected.map(expectedToJsonLine));
    file.end();
    await once(file, 'finish');
  }
  return { events: stream.events.length, expected: stream.expected.length };
}

/** Resolves `--scenario a,b` (names, rule ids meaning every scenario of the rule, or `all`). */
export function resolveScenarios(spec: string): string[] | 'all' {
  if (spec === 'all') return 'all';
  const known = listScenarios();
  const names: string[] = [];
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)) {
    const exact = known.filter((s) => s.name === part);
    const byRule = known.filter((s) => s.ruleId === part);
    const matched = exact.length > 0 ? exact : byRule;
    if (matched.length === 0) {
      throw new Error(
        `unknown scenario '${part}'; \`tapio scenarios\` lists them (a rule id selects all of its scenarios)`,
      );
    }
    names.push(...matched.map((s) => s.name));
  }
  return names;
}
