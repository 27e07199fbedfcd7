/**
 * A PS under abuse: `npm run bench:abuse [-- --abuse-seconds 60 --churn-seconds 600 --churn-workers 10000]`.
 *
 * What it measures: one good worker's push-to-ack latency (pull, then push over its WebSocket,
 * one push in flight, every 50 ms) and `GET /api/status` latency (every 100 ms), side by side
 * in one run, first with no abuse, then during each abuse in turn, each bounded in count and
 * time, on loopback:
 *
 *   (a) joins    one client looping `POST /api/join` as fast as it can, 16 at a time;
 *   (b) idle     1,024 sockets opened and left idle: each tries to join and open /ws (most are
 *                refused by the per-address limits), else holds a bare TCP connection;
 *   (c) slow     2,000 request bodies trickling one byte a second, reopened when cut off;
 *   (d) churn    N simulated workers (mnist-logreg) joining, pulling, pushing and leaving, spread
 *                over the phase, each from its own address (X-Forwarded-For, --trust-proxy on).
 *
 * The abusers run in a child process of their own: on the Internet they are other machines, and
 * run in the measuring process their own work (2,000 socket writes a second, 64 churning
 * workers' requests) would delay the good worker's event loop and be counted as the PS's.
 *
 * The PS runs in a child process with its default limits (only --trust-proxy on, so the churn
 * workers count as distinct volunteers; the abusers send no X-Forwarded-For and share one
 * address). Its RSS is sampled every second from /proc and the phase's maximum is reported.
 * The bars (issue 12): push-to-ack p99 within 2x the no-abuse value; status p99 < 200 ms.
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { JoinResponse } from '../shared/api.ts';
import { defineOptions, parseCommandLine, type Values } from '../server/options/schema.ts';
import { RawWorkerSocket, join, mustJoin, postJson, pullHttp, pushHttp } from '../test/abuse-tools.ts';
import { machineLine, printTable } from './sys.ts';

// ---- The PS (child process) -------------------------------------------------------------------

async function serve(): Promise<void> {
  const { startTestPs } = await import('../test/abuse-tools.ts');
  const ps = await startTestPs({ trustProxy: 'on', secret: undefined });
  process.send!({ url: ps.url });
  process.on('message', (m) => {
    if (m === 'stats') process.send!({ record: ps.built.ps.store.recordSize, floor: ps.built.ps.store.recordFloor, sessions: ps.built.ps.sessions.size });
    if (m === 'stop') void ps.close().then(() => process.exit(0));
  });
}

// ---- Measuring -------------------------------------------------------------------------------

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs: number[], q: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

interface PhaseResult {
  readonly name: string;
  readonly push: number[];
  readonly status: number[];
  readonly statusTimeouts: number;
  readonly rssMax: number;
  readonly note: string;
}

/** Runs the good worker and the status poller for `seconds` while `abuse` runs; returns the samples. */
async function phase(name: string, url: string, pid: number, good: { join: JoinResponse; socket: RawWorkerSocket; seq: number }, seconds: number, abuse: (stop: () => boolean) => Promise<string>): Promise<PhaseResult> {
  const until = Date.now() + seconds * 1000;
  const stop = () => Date.now() >= until;
  const push: number[] = [];
  const status: number[] = [];
  let statusTimeouts = 0;
  let rssMax = 0;
  const worker = (async () => {
    while (!stop()) {
      good.socket.pull(good.join);
      let reply = await good.socket.next(10000);
      while (typeof reply === 'string') reply = await good.socket.next(10000);
      const version = reply.readUInt32LE(12);
      const t = performance.now();
      good.socket.push(good.join, ++good.seq, version);
      let ack = await good.socket.next(10000);
      while (typeof ack === 'string') ack = await good.socket.next(10000);
      push.push(performance.now() - t);
      await sleep(50);
    }
  })();
  const poller = (async () => {
    while (!stop()) {
      const t = performance.now();
      try {
        const res = await fetch(new URL('/api/status', url), { signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
        status.push(performance.now() - t);
      } catch {
        statusTimeouts += 1;
        status.push(5000);
      }
      await sleep(100);
    }
  })();
  const rss = setInterval(() => (rssMax = Math.max(rssMax, rssMb(pid))), 1000);
  const note = await abuse(stop);
  await Promise.all([worker, poller]);
  clearInterval(rss);
  rssMax = Math.max(rssMax, rssMb(pid));
  return { name, push, status, statusTimeouts, rssMax, note };
}

// ---- The abuses ------------------------------------------------------------------------------

async function joinFlood(url: string, stop: () => boolean): Promise<string> {
  let ok = 0;
  let limited = 0;
  let other = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (!stop()) {
      try {
        const res = await join(url);
        if (res.status === 200) ok += 1;
        else if (res.status === 429) limited += 1;
        else other += 1;
      } catch {
        other += 1;
      }
    }
  }));
  return `${ok + limited + other} joins: ${ok} admitted, ${limited} refused 429, ${other} other`;
}

async function idleSockets(url: string, stop: () => boolean, count: number): Promise<string> {
  const port = Number(new URL(url).port);
  const held: (RawWorkerSocket | Socket)[] = [];
  let sessions = 0;
  // All at once (a refused join is held for --refusal-delay-ms, so one by one would open few).
  await Promise.all(Array.from({ length: count }, async () => {
    const res = await join(url).catch(() => undefined);
    if (res?.status === 200) {
      const s = new RawWorkerSocket(url, res.body);
      s.ws.on('error', () => {});
      held.push(s);
      sessions += 1;
    } else {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      held.push(s);
    }
  }));
  while (!stop()) await sleep(200);
  const open = held.filter((h) => (h instanceof RawWorkerSocket ? h.ws.readyState === 1 : !h.destroyed)).length;
  for (const h of held) (h instanceof RawWorkerSocket ? h.close() : h.destroy());
  return `${held.length} sockets: ${sessions} got a session, ${open} still open at the end`;
}

async function slowBodies(url: string, stop: () => boolean, count: number): Promise<string> {
  const port = Number(new URL(url).port);
  let opened = 0;
  let cut = 0;
  const open = (): Socket => {
    opened += 1;
    const s = connect(port, '127.0.0.1', () => s.write('POST /api/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{'));
    s.on('error', () => {});
    return s;
  };
  const sockets = Array.from({ length: count }, open);
  const drip = setInterval(() => {
    for (let i = 0; i < sockets.length; i++) {
      const s = sockets[i]!;
      if (s.destroyed || s.closed) {
        cut += 1;
        if (!stop()) sockets[i] = open();
      } else s.write(' ');
    }
  }, 1000);
  while (!stop()) await sleep(200);
  clearInterval(drip);
  for (const s of sockets) s.destroy();
  return `${opened} slow bodies opened, ${cut} cut off by the PS`;
}

async function churn(url: string, stop: () => boolean, workers: number, seconds: number): Promise<string> {
  let done = 0;
  let refused = 0;
  const started = Date.now();
  const one = async (k: number): Promise<void> => {
    const from = `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`;
    try {
      const j = await mustJoin(url, { from });
      const { version } = await pullHttp(url, j);
      const r = await pushHttp(url, j, 1, version);
      if (r.status !== 200) refused += 1;
      await postJson(url, '/api/leave', {}, { authorization: `Bearer ${j.token}` });
      done += 1;
    } catch {
      refused += 1;
    }
  };
  const inFlight = new Set<Promise<void>>();
  for (let k = 1; k <= workers && !stop(); k++) {
    // Spread the arrivals evenly over the phase.
    const due = started + ((k - 1) * seconds * 1000) / workers;
    if (due > Date.now()) await sleep(due - Date.now());
    const p = one(k).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 64) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  while (!stop()) await sleep(200);
  return `${done} workers joined, pushed and left; ${refused} failed`;
}

// ---- Main ------------------------------------------------------------------------------------

const OPTIONS = defineOptions({
  baselineSeconds: { type: 'int', min: 1, arg: 'S', default: 30, help: 'the phase without abuse' },
  abuseSeconds: { type: 'int', min: 1, arg: 'S', default: 60, help: 'each of abuses (a), (b) and (c)' },
  idleSockets: { type: 'int', min: 1, arg: 'N', default: 1024, help: '(b): sockets opened and left idle' },
  slowBodies: { type: 'int', min: 1, arg: 'N', default: 2000, help: '(c): request bodies trickling' },
  churnWorkers: { type: 'int', min: 1, arg: 'N', default: 10000, help: '(d): simulated workers' },
  churnSeconds: { type: 'int', min: 1, arg: 'S', default: 600, help: '(d): the phase they are spread over' },
});

type Options = Values<typeof OPTIONS>;
type Abuse = 'none' | 'joins' | 'idle' | 'slow' | 'churn';

/** Runs one abuse in a child process for `seconds`; resolves with what the abusers got. */
function abuser(kind: Abuse, url: string, seconds: number, o: Options): Promise<string> {
  const child = fork(fileURLToPath(import.meta.url), ['abuse', JSON.stringify({ kind, url, seconds, o })], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let note: string | undefined;
    // Bounded: the phase's length plus a minute for the abusers to close their sockets.
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 60) * 1000);
    child.on('message', (m) => (note = String(m)));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (note !== undefined) resolve(note);
      else reject(new Error(`abuser ${kind} exited (${code ?? signal}) without a report`));
    });
  });
}

async function abuse(spec: { kind: Abuse; url: string; seconds: number; o: Options }): Promise<void> {
  const { kind, url, seconds, o } = spec;
  const until = Date.now() + seconds * 1000;
  const stop = () => Date.now() >= until;
  const note = kind === 'joins' ? await joinFlood(url, stop)
    : kind === 'idle' ? await idleSockets(url, stop, o.idleSockets)
    : kind === 'slow' ? await slowBodies(url, stop, o.slowBodies)
    : kind === 'churn' ? await churn(url, stop, o.churnWorkers, o.churnSeconds)
    : await (async () => {
      while (!stop()) await sleep(200);
      return 'no abuse';
    })();
  process.send!(note, () => process.exit(0));
}

async function main(): Promise<void> {
  const o = parseCommandLine(OPTIONS, 'npm run bench:abuse -- [options]: a good worker\'s latency under abuse (docs/benchmarks.md)');
  console.log(machineLine());
  const child = fork(fileURLToPath(import.meta.url), ['serve'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { url } = await new Promise<{ url: string }>((resolve) => child.once('message', (m) => resolve(m as { url: string })));
  const stats = () => new Promise<{ record: number; floor: number; sessions: number }>((resolve) => {
    child.once('message', (m) => resolve(m as { record: number; floor: number; sessions: number }));
    child.send('stats');
  });
  const pid = child.pid!;
  const goodJoin = await mustJoin(url, { from: '192.0.2.1' });
  const socket = new RawWorkerSocket(url, goodJoin);
  await socket.opened();
  await socket.next(); // hello
  const good = { join: goodJoin, socket, seq: 0 };
  const results: PhaseResult[] = [];
  const run = async (name: string, seconds: number, kind: Abuse) => {
    console.log(`phase ${name}: ${seconds} s`);
    const r = await phase(name, url, pid, good, seconds, () => abuser(kind, url, seconds, o));
    const s = await stats();
    results.push({ ...r, note: `${r.note}; PS: ${s.sessions} sessions, record ${s.record} workers (floor ${s.floor})` });
  };
  await run('none', o.baselineSeconds, 'none');
  await run('(a) join flood', o.abuseSeconds, 'joins');
  await run(`(b) ${o.idleSockets} idle sockets`, o.abuseSeconds, 'idle');
  await run(`(c) ${o.slowBodies} slow bodies`, o.abuseSeconds, 'slow');
  await run(`(d) ${o.churnWorkers} workers churning`, o.churnSeconds, 'churn');
  const base = quantile(results[0]!.push, 0.99);
  printTable([
    ['abuse', 'pushes', 'push p50 ms', 'push p99 ms', 'p99 / none', 'status p50 ms', 'status p99 ms', 'status timeouts', 'PS RSS max MB'],
    ...results.map((r) => [
      r.name, String(r.push.length), quantile(r.push, 0.5).toFixed(1), quantile(r.push, 0.99).toFixed(1), (quantile(r.push, 0.99) / base).toFixed(2),
      quantile(r.status, 0.5).toFixed(1), quantile(r.status, 0.99).toFixed(1), String(r.statusTimeouts), r.rssMax.toFixed(0),
    ]),
  ]);
  for (const r of results) console.log(`${r.name}: ${r.note}`);
  console.log(`good worker ${goodJoin.workerId}: still in session: ${good.seq} pushes acked`);
  socket.close();
  child.send('stop');
  await new Promise((r) => child.once('exit', r));
}

if (process.argv[2] === 'serve') void serve();
else if (process.argv[2] === 'abuse') void abuse(JSON.parse(process.argv[3]!));
else await main();
