/**
 * The rollout status page: its own small HTTP server on `rollout.statusPort` (the shared
 * observability server serves only /metrics and /healthz). GET / is plain HTML with inline JS that
 * polls GET /api/status every second; POST /api/command {command} with `Authorization: Bearer
 * <rollout.uiToken>` puts the command on the control topic, the same path as the CLI.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@tapio/observability';
import type { CommandName } from '@tapio/rollout';

/** The commands the page may send (`start` needs a plan: use the CLI). */
export const PAGE_COMMANDS: readonly CommandName[] = ['pause', 'resume', 'promote', 'abort', 'retry'];

export interface StatusServerOptions {
  host: string;
  port: number;
  token: string;
  logger: Logger;
  status: () => unknown;
  command: (command: CommandName) => Promise<void>;
}

export interface StatusServer {
  readonly url: string;
  close(): Promise<void>;
}

const MAX_BODY = 4096;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

function authorized(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const m = /^Bearer (.+)$/.exec(header);
  if (m === null) return false;
  const given = Buffer.from(m[1] as string);
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(PAGE);
    } else if (req.method === 'GET' && path === '/api/status') {
      json(res, 200, options.status());
    } else if (req.method === 'POST' && path === '/api/command') {
      if (options.token === '') {
        json(res, 403, { error: 'commands from the page are off: rollout.uiToken is empty' });
        return;
      }
      if (!authorized(req, options.token)) {
        res.setHeader('www-authenticate', 'Bearer');
        json(res, 401, { error: 'a valid bearer token (rollout.uiToken) is required' });
        return;
      }
      let command: unknown;
      try {
        command = (JSON.parse(await readBody(req)) as { command?: unknown }).command;
      } catch {
        json(res, 400, { error: 'expected a JSON body {"command": "..."}' });
        return;
      }
      if (typeof command !== 'string' || !PAGE_COMMANDS.includes(command as CommandName)) {
        json(res, 400, { error: `command must be one of ${PAGE_COMMANDS.join(', ')}` });
        return;
      }
      await options.command(command as CommandName);
      json(res, 202, { sent: command });
    } else if (path === '/' || path === '/api/status' || path === '/api/command') {
      res.writeHead(405).end();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try / or /api/status\n');
    }
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.logger.error({ err }, 'status page request failed');
      if (!res.headersSent) json(res, 500, { error: (err as Error).message });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${options.host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tapio rollout</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.3rem; margin: 0 0 .5rem; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
  table { border-collapse: collapse; } td, th { padding: .2rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }
  th { background: #f4f4f4; } .num { text-align: right; font-variant-numeric: tabular-nums; }
  .breached { color: #b00; font-weight: bold; } .met { color: #070; } .inconclusive { color: #a60; }
  #banner { padding: .4rem .8rem; border-radius: 4px; display: inline-block; background: #eee; }
  #banner.rolled-back, #banner.aborted { background: #fcc; } #banner.running, #banner.completed { background: #cfc; }
  #banner.paused, #banner.waiting-promote { background: #ffd; }
  .controls { margin: 1rem 0; } .controls button { margin-right: .4rem; } #message { margin-left: .6rem; }
</style>
</head>
<body>
<h1>Tapio V2 rollout</h1>
<div><span id="banner">loading…</span> <span id="controller"></span></div>
<div class="controls">
  <label>token <input id="token" type="password" autocomplete="off" size="24"></label>
  <button id="pause" data-command="pause">Pause</button>
  <button id="resume" data-command="resume">Resume</button>
  <button id="promote" data-command="promote">Promote</button>
  <button id="abort" data-command="abort">Abort</button>
  <button id="retry" data-command="retry">Retry</button>
  <span id="message"></span>
</div>
<table>
  <tr><th>status</th><td id="status">-</td></tr>
  <tr><th>stage</th><td id="stage">-</td></tr>
  <tr><th>V2 target</th><td id="v2-target">-</td></tr>
  <tr><th>last decision</th><td id="decision">-</td></tr>
  <tr><th>rollback</th><td id="rollback">-</td></tr>
</table>
<h2>Routing config in force</h2>
<div id="routing">-</div>
<table id="split"><thead><tr><th>category</th><th class="num">V2 %</th><th>decided by</th></tr></thead><tbody></tbody></table>
<h2>Stage criteria (live)</h2>
<table id="criteria"><thead><tr><th>criterion</th><th class="num">value</th><th class="num">max</th><th class="num">samples</th><th>verdict</th></tr></thead><tbody></tbody></table>
<h2>Engines (snapshot window)</h2>
<table id="engines"><thead><tr><th>engine</th><th class="num">instances</th><th class="num">records/s</th><th class="num">calls</th><th class="num">errors</th><th class="num">slow</th><th class="num">lag</th></tr></thead>
<tbody><tr id="engine-v1"></tr><tr id="engine-v2"></tr></tbody></table>
<h2>Shadow comparison (snapshot window)</h2>
<table><tr><th>matched</th><th>missing</th><th>extra</th><th>differing</th></tr>
<tr><td id="cmp-matched" class="num">-</td><td id="cmp-missing" class="num">-</td><td id="cmp-extra" class="num">-</td><td id="cmp-differing" class="num">-</td></tr></table>
<h2>History</h2>
<table id="history"><thead><tr><th>time</th><th>what</th><th>stage</th><th>reason</th></tr></thead><tbody></tbody></table>
<script>
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var text = function (id, v) { $(id).textContent = v; };
  var pct = function (v) { return v === null || v === undefined ? '-' : (v * 100).toFixed(2) + ' %'; };
  var fig = function (c, v) { return c.name === 'lag' ? (v === null ? '-' : String(v)) : pct(v); };
  function row(cells, cls) {
    var tr = document.createElement('tr');
    cells.forEach(function (c, i) {
      var td = document.createElement('td');
      td.textContent = c;
      if (cls && cls[i]) td.className = cls[i];
      tr.appendChild(td);
    });
    return tr;
  }
  function fill(tbody, rows) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    rows.forEach(function (r) { tbody.appendChild(r); });
  }
  function engineRow(id, name, e) {
    var tr = $(id);
    var r = row([name, e.instances, e.ratePerSec.toFixed(1), e.calls, e.errors, e.slowCalls, e.lag === null ? '-' : e.lag],
      ['', 'num', 'num', 'num', 'num', 'num', 'num']);
    tr.replaceChildren.apply(tr, Array.prototype.slice.call(r.childNodes));
  }
  function render(s) {
    var r = s.rollout;
    $('banner').className = r.status;
    text('banner', r.status);
    text('controller', s.active ? 'active controller ' + s.instance : 'standby ' + s.instance + ' (another controller acts)');
    text('status', r.status);
    var st = r.stages[r.stageIndex];
    text('stage', r.status === 'idle' ? '-' : (r.stageIndex + 1) + ' of ' + r.stages.length +
      (st ? ' (' + st.percentage + ' % V2, min ' + Math.round(st.minDurationMs / 1000) + ' s' + (st.manualGate ? ', manual gate' : '') + ')' : ''));
    text('v2-target', s.targetPercentage === null ? '-' : s.targetPercentage + ' %');
    text('decision', s.live ? s.live.decision.decision + ': ' + s.live.decision.reason : '-');
    text('rollback', r.rollback ? new Date(r.rollback.atMs).toISOString() + ' ' + r.rollback.cause + ': ' + r.rollback.reason : '-');
    if (s.routing) {
      text('routing', 'epoch ' + s.routing.epoch + ', strategy ' + s.routing.strategy + ', V2 ' + s.routing.v2Percentage +
        ' %, breaker ' + s.routing.breaker);
      $('routing').dataset.v2 = String(s.routing.v2Percentage);
      fill($('split').tBodies[0], s.routing.split.map(function (c) {
        return row([c.category, c.v2Percentage === null ? '-' : c.v2Percentage, c.by], ['', 'num', '']);
      }));
    } else text('routing', 'no routing config on the control topic yet');
    var crit = s.live ? s.live.decision.criteria : [];
    fill($('criteria').tBodies[0], crit.map(function (c) {
      return row([c.name + (c.required ? '' : ' (optional)'), fig(c, c.value), fig(c, c.max), c.samples + '/' + c.minSamples, c.verdict],
        ['', 'num', 'num', 'num', c.verdict]);
    }));
    engineRow('engine-v1', 'V1', s.engines.v1);
    engineRow('engine-v2', 'V2', s.engines.v2);
    text('cmp-matched', s.comparison.matched); text('cmp-missing', s.comparison.missing);
    text('cmp-extra', s.comparison.extra); text('cmp-differing', s.comparison.differing);
    fill($('history').tBodies[0], r.history.slice().reverse().slice(0, 50).map(function (h) {
      return row([new Date(h.atMs).toISOString(), h.kind + (h.by ? ' [' + h.by + ']' : ''), (h.stageIndex + 1) + ' (' + h.percentage + ' %)', h.reason]);
    }));
  }
  function poll() {
    fetch('api/status', { cache: 'no-store' })
      .then(function (res) { return res.json(); })
      .then(render)
      .catch(function (err) { text('controller', 'status unavailable: ' + err); })
      .then(function () { setTimeout(poll, 1000); });
  }
  Array.prototype.forEach.call(document.querySelectorAll('button[data-command]'), function (b) {
    b.addEventListener('click', function () {
      var command = b.dataset.command;
      if (command === 'abort' && !window.confirm('Abort the rollout and send V2 back to 0 %?')) return;
      text('message', command + '…');
      fetch('api/command', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer ' + $('token').value },
        body: JSON.stringify({ command: command })
      }).then(function (res) {
        return res.json().then(function (body) {
          text('message', res.ok ? command + ' sent' : command + ' refused: ' + body.error);
        });
      }).catch(function (err) { text('message', command + ' failed: ' + err); });
    });
  });
  poll();
})();
</script>
</body>
</html>
`;
