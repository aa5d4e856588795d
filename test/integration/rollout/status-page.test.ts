/**
 * The rollout status page: its JSON endpoint and token-protected commands with fetch, and the page
 * itself in headless Chromium (Debian's package, scripts/install-browser.sh) through playwright-core.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { eventually, randomName } from '../../helpers/stack';
import {
  connectedProducer,
  defer,
  feedSnapshots,
  rolloutConfig,
  send,
  startCommand,
  startController,
  topic,
  v2Snapshot,
} from './helpers';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

interface Status {
  active: boolean;
  rollout: { status: string; stageIndex: number; history: { kind: string; by?: string }[] };
  targetPercentage: number | null;
  routing: { v2Percentage: number; breaker: string; split: { category: string; v2Percentage: number | null }[] } | null;
  engines: { v2: { calls: number; instances: number } };
  live: { decision: { decision: string; criteria: { name: string; verdict: string }[] } } | null;
}

async function runningRollout(t: TestContext) {
  const control = await topic(t, 'status-control', 1);
  const healthTopic = await topic(t, 'status-health', 1);
  const config = rolloutConfig(control, healthTopic);
  const controller = await startController(t, config, randomName('tapio-rollout-controller'));
  await eventually(() => controller.service.health()['active'] === true, 20_000, 'controller active');
  const producer = await connectedProducer(t);
  let calls = 100;
  feedSnapshots(t, producer, healthTopic, () => v2Snapshot(calls++, 0, 3), 500);
  await send(producer, control, startCommand('10:120s,100:120s'));
  const url = String(controller.service.health()['statusUrl']);
  const status = async (): Promise<Status> => (await (await fetch(`${url}/api/status`)).json()) as Status;
  await eventually(async () => (await status()).routing?.v2Percentage === 10, 10_000, 'stage 1 routed');
  return { url, status };
}

const post = (url: string, body: unknown, token?: string) =>
  fetch(`${url}/api/command`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
  });

test('status page API: live JSON, commands only with the bearer token, through the control topic', async (t) => {
  const { url, status } = await runningRollout(t);
  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await page.text(), /<button id="abort"/);

  await eventually(async () => ((await status()).live?.decision.criteria.length ?? 0) === 4, 5000, 'live criteria');
  const s = await status();
  assert.equal(s.active, true);
  assert.equal(s.rollout.status, 'running');
  assert.equal(s.targetPercentage, 10);
  assert.equal(s.routing?.breaker, 'auto');
  assert.equal(s.routing?.split.find((c) => c.category === 'network')?.v2Percentage, 10);
  assert.equal(s.live?.decision.decision, 'hold');
  const calls = s.engines.v2.calls;
  await eventually(async () => (await status()).engines.v2.calls > calls, 5000, 'V2 calls grow');

  assert.equal((await post(url, { command: 'pause' })).status, 401);
  assert.equal((await post(url, { command: 'pause' }, 'wrong-token')).status, 401);
  assert.equal((await post(url, { command: 'start' }, 'test-token')).status, 400);
  assert.equal((await post(url, { command: 'explode' }, 'test-token')).status, 400);
  assert.equal((await fetch(`${url}/api/command`)).status, 405);
  assert.equal((await fetch(`${url}/nope`)).status, 404);
  assert.equal((await status()).rollout.status, 'running', 'refused commands changed nothing');

  const paused = await post(url, { command: 'pause' }, 'test-token');
  assert.equal(paused.status, 202);
  await eventually(async () => (await status()).rollout.status === 'paused', 5000, 'paused');
  assert.equal((await status()).rollout.history.at(-1)?.by, 'status-page');
  assert.equal((await post(url, { command: 'resume' }, 'test-token')).status, 202);
  await eventually(async () => (await status()).rollout.status === 'running', 5000, 'resumed');
});

test('status page in headless Chromium: figures update live, abort with the token rolls back', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is missing: run scripts/install-browser.sh (apt-get install chromium) to run this test`);
    return;
  }
  const { url, status } = await runningRollout(t);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  defer(t, () => browser.close());
  const page = await browser.newPage();
  page.on('dialog', (d) => void d.accept());
  await page.goto(url);
  // Page-side expressions are strings: the tests compile without the DOM library.
  const until = (expression: string, timeout = 10_000) => page.waitForFunction(expression, null, { timeout });
  await until(`document.getElementById('status')?.textContent === 'running'`);
  assert.match((await page.textContent('#routing')) ?? '', /V2 10 %/);

  // A live figure: V2 calls in the engines table grow as snapshots arrive.
  const cell = '#engine-v2 td:nth-child(4)';
  await page.waitForSelector(cell, { timeout: 10_000 });
  const before = Number(await page.textContent(cell));
  await until(`Number(document.querySelector(${JSON.stringify(cell)})?.textContent) > ${before}`);

  // Without the token the button is refused and nothing changes.
  await page.click('#abort');
  await until(`/refused/.test(document.getElementById('message')?.textContent ?? '')`, 5000);
  assert.equal((await status()).rollout.status, 'running');

  await page.fill('#token', 'test-token');
  await page.click('#abort');
  await until(`document.getElementById('status')?.textContent === 'aborted'`);
  await until(`document.getElementById('routing')?.dataset.v2 === '0'`);
  assert.match((await page.textContent('#rollback')) ?? '', /abort: aborted by status-page/);
  assert.match((await page.textContent('#routing')) ?? '', /breaker forced-open/);
  const s = await status();
  assert.equal(s.rollout.status, 'aborted');
  assert.equal(s.routing?.v2Percentage, 0);
});
