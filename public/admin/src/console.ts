/**
 * The admin console page (/admin): logs in with the admin token, then polls
 * /api/admin/console every second and renders the cluster, the workers, the charts and the
 * events; the buttons call the console's POST routes. The token lives in sessionStorage only.
 */
import type { Capabilities, ConsoleState, NodeView, RobustnessView, RunEvent, RunSettings, Sample, Snapshot, WorkerView } from '../../../shared/admin-api.ts';
import { Charts } from './charts.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const samples: Sample[] = [];
const events: RunEvent[] = [];
let token = sessionStorage.getItem('tabswarm-admin-token') ?? '';
let charts: Charts | undefined;
let since = -1;
let timer: number | undefined;
let runShown = false;
declare global {
  interface Window {
    /** What the console holds, for tests: every sample and event since the run began. */
    tabswarmConsole: { samples: readonly Sample[]; events: readonly RunEvent[] };
  }
}
window.tabswarmConsole = { samples, events };

async function api<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      message = (JSON.parse(text) as { message: string }).message;
    } catch { /* not JSON */ }
    throw Object.assign(new Error(`${method} ${path}: ${res.status} ${message}`), { status: res.status });
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

function showError(err: unknown): void {
  $('error').textContent = err instanceof Error ? err.message : String(err);
}

function el(tag: string, text: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function button(label: string, enabled: boolean, action: () => Promise<unknown>, title?: string): HTMLButtonElement {
  const b = el('button', label) as HTMLButtonElement;
  b.type = 'button';
  b.disabled = !enabled;
  b.dataset.action = label;
  if (title) b.title = title;
  b.onclick = () => {
    b.disabled = true;
    action().then(() => ($('error').textContent = ''), showError).finally(() => void poll());
  };
  return b;
}

const fmt = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? '-' : x.toFixed(d));

function renderNodes(nodes: readonly NodeView[], caps: Capabilities): void {
  const body = $('nodes').querySelector('tbody')!;
  body.replaceChildren(...nodes.map((n) => {
    const tr = document.createElement('tr');
    tr.dataset.node = n.name;
    tr.dataset.role = n.role ?? '';
    tr.dataset.health = n.health;
    const enc = encodeURIComponent(n.name);
    const actions = document.createElement('td');
    const noSup = 'needs the cluster supervisor (tabswarm cluster)';
    actions.append(
      button('kill', caps.killNode && n.health === 'up', () => api('POST', `/api/admin/nodes/${enc}/kill`), caps.killNode ? 'SIGKILL this node' : noSup),
      button('restart', caps.restartNode && n.health === 'down', () => api('POST', `/api/admin/nodes/${enc}/restart`), caps.restartNode ? 'start this node again' : noSup),
      button('expire session', caps.expireNode && n.health === 'up', () => api('POST', `/api/admin/nodes/${enc}/expire`), caps.expireNode ? "expire this node's ZooKeeper session" : 'needs a ZooKeeper cluster'),
      button('drop shard', caps.dropShard && n.health === 'up', async () => {
        const k = prompt('PS shard to drop (0 .. S-1)', '0');
        if (k !== null) await api('POST', `/api/admin/nodes/${enc}/shards/${encodeURIComponent(k)}/drop`);
      }, caps.dropShard ? 'lose one PS shard and recover it from its checkpoint' : 'needs --strategy checkpoint'),
    );
    tr.append(el('td', n.name), el('td', n.role ?? '-', 'role'), el('td', n.health, n.health), el('td', n.epoch === null ? '-' : String(n.epoch)),
      el('td', n.version === null ? '-' : String(n.version)), el('td', fmt(n.updatesPerSec)), el('td', n.url, 'muted'), actions);
    return tr;
  }));
}

function renderWorkers(workers: readonly WorkerView[], caps: Capabilities): void {
  $('worker-count').textContent = String(workers.length);
  $('workers').querySelector('tbody')!.replaceChildren(...workers.map((w) => {
    const tr = document.createElement('tr');
    tr.dataset.worker = String(w.id);
    tr.dataset.state = w.state;
    tr.dataset.backend = w.backend ?? '';
    const actions = document.createElement('td');
    actions.append(button('disconnect', caps.disconnectWorker, () => api('POST', `/api/admin/workers/${w.id}/disconnect`)));
    tr.append(el('td', String(w.id)), el('td', w.node), el('td', w.backend ?? '-'), el('td', fmt(w.examplesPerSec)), el('td', w.state),
      el('td', String(w.buffered)), el('td', String(w.staleness)), el('td', String(w.steps)), actions);
    return tr;
  }));
}

/**
 * Untrusted workers: the aggregator's and the output guard's counts, and the workers kept out as
 * repeat offenders with the reason. The section is made here, after the workers' table, so the
 * page's markup (public/admin.html) needs nothing for it.
 */
function renderRobustness(r: RobustnessView | null | undefined): void {
  let section = document.getElementById('robustness');
  if (!section) {
    section = document.createElement('section');
    section.id = 'robustness';
    $('workers').after(section);
  }
  if (!r) return void section.replaceChildren();
  const g = r.lastGuardRefusal;
  const summary = el('p', `aggregator ${r.aggregator} on ${r.node}: ${r.clipped} pushes clipped (radius ${fmt(r.radius, 3)}), ${r.excessLimited} cut for a record of excess, `
    + `${r.directionLimited} cut for their direction; `
    + `output guard refused ${r.versionsRefused} versions${g ? ` (last: version ${g.version} from worker ${g.workerId}, ${g.reason})` : ''}; `
    + `${r.offenders} offenders disconnected, ${r.keptOut.length} kept out now.`);
  summary.id = 'robustness-summary';
  const table = document.createElement('table');
  table.id = 'kept-out';
  table.createTHead().insertRow().append(...['kept-out worker', 'address', 'reason', 'since', 'for'].map((h) => el('th', h)));
  const now = Date.now();
  table.createTBody().append(...r.keptOut.map((k) => {
    const tr = document.createElement('tr');
    tr.dataset.worker = String(k.workerId);
    tr.dataset.reason = k.reason;
    tr.append(el('td', String(k.workerId)), el('td', k.address || '-', 'muted'), el('td', k.reason), el('td', new Date(k.at).toLocaleTimeString()), el('td', `${Math.max(0, Math.round((k.until - now) / 1000))} s`));
    return tr;
  }));
  section.replaceChildren(el('h2', 'Untrusted workers'), summary, ...(r.keptOut.length > 0 ? [table] : []));
}

function renderEvents(fresh: readonly RunEvent[]): void {
  const list = $('events');
  for (const e of fresh) {
    const li = el('li', `${e.t.toFixed(1)} s  ${e.kind}${e.node ? ` ${e.node}` : ''}: ${e.detail}`, `event ${e.kind}`);
    li.dataset.kind = e.kind;
    list.prepend(li);
  }
}

function renderRun(run: RunSettings, caps: Capabilities, snap: Snapshot | null): void {
  $('run').textContent = `${run.model} on ${run.dataset}; strategy ${run.strategy}; buffer ${run.bufferMode}; lr ${run.lr}; rule ${run.rule}.`;
  $('mode').textContent = snap?.mode === 'cluster' ? '(cluster)' : '(single embedded PS)';
  const c = snap?.cluster;
  $('cluster-info').textContent = c ? `${c.name}: epoch ${c.epoch}, ${c.replication} replication, ${c.reads} reads` : snap?.mode === 'single' ? 'the single embedded PS' : '';
  if (!runShown) {
    runShown = true;
    $<HTMLInputElement>('lr').value = String(run.lr);
    $<HTMLSelectElement>('rule').replaceChildren(...run.rules.map((r) => Object.assign(document.createElement('option'), { value: r, textContent: r, selected: r === run.rule })));
  }
  $<HTMLButtonElement>('apply-run').disabled = !caps.setRun;
}

async function poll(): Promise<void> {
  try {
    const state = await api<ConsoleState>('GET', `/api/admin/console?since=${since}`);
    $('login').hidden = true;
    $('console').hidden = false;
    samples.push(...state.samples);
    events.push(...state.events);
    since = Math.max(since, ...state.samples.map((s) => s.t), ...state.events.map((e) => e.t));
    renderRun(state.run, state.capabilities, state.snapshot);
    renderNodes(state.snapshot?.nodes ?? [], state.capabilities);
    renderWorkers(state.snapshot?.workers ?? [], state.capabilities);
    renderRobustness(state.snapshot?.robustness);
    renderEvents(state.events);
    charts ??= new Charts($('charts'), () => samples, () => events);
    charts.update();
    document.body.dataset.ready = 'true';
  } catch (err) {
    showError(err);
    if ((err as { status?: number }).status === 401) {
      clearInterval(timer);
      timer = undefined;
      sessionStorage.removeItem('tabswarm-admin-token');
      $('login').hidden = false;
      $('console').hidden = true;
    }
  }
}

async function download(path: string, name: string): Promise<void> {
  const res = await fetch(path, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(await res.blob()), download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function begin(): void {
  $('error').textContent = '';
  void poll();
  clearInterval(timer);
  timer = window.setInterval(() => void poll(), 1000);
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $<HTMLInputElement>('token').value.trim();
  sessionStorage.setItem('tabswarm-admin-token', token);
  begin();
});
$('run-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const lr = Number($<HTMLInputElement>('lr').value);
  api('POST', '/api/admin/run', { lr, rule: $<HTMLSelectElement>('rule').value }).then(() => ($('error').textContent = ''), showError);
});
$('download-csv').onclick = () => void download('/api/admin/series.csv', 'tabswarm-series.csv').catch(showError);
$('download-json').onclick = () => void download('/api/admin/series.json', 'tabswarm-series.json').catch(showError);
if (token) begin();
