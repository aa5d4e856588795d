/**
 * The integrity suite's full form (`npm run test:integrity`, scripts/integrity.sh): every fault with
 * a larger stream, one run each, and a table. The broker fault stops the SHARED local broker, so it
 * runs only with TAPIO_INTEGRITY_BROKER_FAULT=1. Exit code 1 when a run breaks a guarantee (a
 * detection lost outside a fault's documented window, a duplicate, a poison record not dead-lettered).
 * Usage: node test/dist/integrity/full.js [fault ...]
 */
import { ALL_FAULTS, TABLE_HEADER, brokerFaultEnabled, runIntegrity, tableRow } from './harness';
import type { FaultName, RunReport } from './harness';

function problems(r: RunReport): string[] {
  const p: string[] = [];
  const unexplained = r.missing.filter((m) => !m.atFault);
  if (unexplained.length > 0) {
    p.push(
      `lost outside the fault window: ${unexplained.map((m) => `${m.detection.ruleId} ${m.detection.entityKey}`).join(', ')}`,
    );
  }
  if (r.fingerprintDuplicates.length > 0) p.push(`fingerprint duplicates: ${r.fingerprintDuplicates.join(', ')}`);
  if (r.notDelivered.length > 0) p.push(`not delivered: ${r.notDelivered.length}`);
  if (r.poisonMissing.length > 0) p.push(`poison not in DLQ: ${r.poisonMissing.join(', ')}`);
  if (r.poisonWrongReason.length > 0) p.push(`poison with unexpected reason: ${r.poisonWrongReason.join(', ')}`);
  if (r.unexpected.length > 0) p.push(`unexpected detections: ${r.unexpected.join(', ')}`);
  const c = r.counts;
  if (c.routedSources + c.unrouted + c.routerDeadLettered !== c.onEventsTopic) {
    p.push(
      `counts: ${c.routedSources} routed + ${c.unrouted} unrouted + ${c.routerDeadLettered} DLQ != ${c.onEventsTopic} in`,
    );
  }
  p.push(...r.notes);
  return p;
}

async function main(): Promise<number> {
  const asked = process.argv.slice(2) as FaultName[];
  const faults = (asked.length > 0 ? asked : ALL_FAULTS).filter((f) => {
    if (f !== 'broker-stop' || brokerFaultEnabled()) return true;
    process.stdout.write(
      'broker-stop skipped: it stops the SHARED broker; set TAPIO_INTEGRITY_BROKER_FAULT=1 to run it\n',
    );
    return false;
  });
  const rows: string[][] = [];
  let failed = 0;
  for (const fault of faults) {
    process.stdout.write(`\n== ${fault}\n`);
    try {
      const r = await runIntegrity({
        fault,
        incidentsPerScenario: 2,
        noiseEvents: 6000,
        produceSeconds: 75,
        log: (line) => process.stdout.write(`  ${line}\n`),
      });
      rows.push(tableRow(r));
      for (const m of r.missing) {
        process.stdout.write(
          `  missing ${m.detection.ruleId} ${m.detection.entityKey} trigger ${m.detection.triggerEventId} on ${m.engine}` +
            `${m.atFault ? ' (incident straddles the fault)' : ''}${m.otherTrigger ? `; fired on ${m.otherTrigger} instead` : ''}\n`,
        );
      }
      const p = problems(r);
      for (const line of p) process.stdout.write(`  PROBLEM ${line}\n`);
      if (p.length > 0) failed++;
      process.stdout.write(
        `  ${JSON.stringify({ counts: r.counts, late: r.lateEvents, raw: r.rawDeliveries, accepted: r.acceptedDeliveries, results: r.results, deduped: r.deduped })}\n`,
      );
    } catch (err) {
      failed++;
      rows.push([fault, 'ERROR', (err as Error).message]);
      process.stdout.write(`  ERROR ${(err as Error).stack ?? String(err)}\n`);
    }
  }
  const widths = TABLE_HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  process.stdout.write(`\n${line(TABLE_HEADER)}\n| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
