#!/usr/bin/env node
/**
 * Time to 90% test accuracy of `tabswarm start` as a newcomer runs it: starts
 * `node bin/tabswarm.mjs start --port 0 [ARGS...]`, takes the time of the "ready" line, reads
 * the PS's evaluation log lines (JSON when not on a TTY) and stops at the first accuracy >= the
 * target, or at the deadline. Prints one JSON summary: seconds from ready to target, the
 * evaluation thread's busy time (an upper bound of its CPU time) against the wall time, and the
 * workers' backends and examples/s from /api/status.
 *
 *   flock /tmp/tabswarm-heavy.lock node bench/first-minute.mjs [--target 0.9] [--deadline 120] -- [start args]
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const cut = argv.indexOf('--');
const own = cut < 0 ? argv : argv.slice(0, cut);
const startArgs = cut < 0 ? [] : argv.slice(cut + 1);
const opt = (name, dflt) => (own.includes(name) ? Number(own[own.indexOf(name) + 1]) : dflt);
const target = opt('--target', 0.9);
const deadlineS = opt('--deadline', 120);

const root = fileURLToPath(new URL('..', import.meta.url));
const child = spawn(process.execPath, ['bin/tabswarm.mjs', 'start', '--port', '0', ...startArgs], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TABSWARM_LOG_FORMAT: 'json' } });
let readyAt;
let url;
const evals = [];
let reached;
let status;
const t0 = performance.now();
/** CPU seconds (user + system) of a process (all its threads) from /proc: Linux only. */
const cpuOf = (pid) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').slice(readFileSync(`/proc/${pid}/stat`, 'utf8').lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / 100 };
  } catch {
    return undefined;
  }
};
/** The PS process's CPU, and that of its descendants (the Chromium worker tabs). */
const cpuSplit = () => {
  const all = new Map();
  for (const d of readdirSync('/proc')) if (/^\d+$/.test(d)) { const c = cpuOf(Number(d)); if (c) all.set(Number(d), c); }
  const inTree = (pid) => { for (let p = pid; p > 1; p = all.get(p)?.ppid ?? 0) if (p === child.pid) return true; return false; };
  let workers = 0;
  for (const [pid, c] of all) if (pid !== child.pid && inTree(pid)) workers += c.cpu;
  return { ps: all.get(child.pid)?.cpu ?? 0, workers };
};
let cpuAtReady;
const finish = (why) => {
  clearTimeout(timer);
  const cpu = cpuSplit();
  const wallS = readyAt === undefined ? 0 : (performance.now() - readyAt) / 1000;
  const evalMs = evals.reduce((s, e) => s + e.ms, 0);
  console.log(JSON.stringify({
    args: startArgs, why, target, startupS: readyAt === undefined ? null : Number(((readyAt - t0) / 1000).toFixed(1)),
    secondsToTarget: reached ?? null, lastAccuracy: evals.at(-1)?.accuracy ?? null, evaluations: evals.length,
    cpuSecondsSinceReady: cpuAtReady && { psProcessInclEval: Number((cpu.ps - cpuAtReady.ps).toFixed(1)), workerTabs: Number((cpu.workers - cpuAtReady.workers).toFixed(1)), wallS: Number(wallS.toFixed(1)) },
    evalBusyMsPerMinute: wallS > 0 ? Math.round((evalMs / wallS) * 60) : null, evalMeanMs: evals.length ? Math.round(evalMs / evals.length) : null,
    workers: status?.workers?.map((w) => ({ backend: w.backend, examplesPerSec: w.examplesPerSec, steps: w.steps, reason: w.backendReason })) ?? null,
    version: status?.version ?? null,
    curve: evals.map((e) => [Number(e.t.toFixed(1)), Number(e.accuracy.toFixed(3))]),
  }));
  child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), 5000).unref();
};
const timer = setTimeout(() => finish('deadline'), (deadlineS + 60) * 1000);
let buf = '';
const onData = (chunk) => {
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    if (process.env.VERBOSE) process.stderr.write(`${line}\n`);
    if (readyAt === undefined && / ready; join at (\S+)/.test(line)) {
      readyAt = performance.now();
      cpuAtReady = cpuSplit();
      url = / ready; join at (\S+)/.exec(line)[1];
      setTimeout(() => finish('deadline'), deadlineS * 1000).unref();
      continue;
    }
    if (!line.startsWith('{')) continue;
    let j;
    try { j = JSON.parse(line); } catch { continue; }
    if (j.msg !== 'evaluation' || readyAt === undefined) continue;
    const t = (performance.now() - readyAt) / 1000;
    evals.push({ t, accuracy: j.accuracy, ms: j.ms ?? 0 });
    if (reached === undefined && j.accuracy >= target) {
      reached = Number(t.toFixed(1));
      fetch(new URL('/api/status', url)).then((r) => r.json()).then((s) => { status = s; }, () => {}).finally(() => finish('target'));
    }
  }
};
child.stdout.setEncoding('utf8').on('data', onData);
child.stderr.setEncoding('utf8').on('data', onData);
setInterval(() => {
  if (url) fetch(new URL('/api/status', url)).then((r) => r.json()).then((s) => { status = s; }, () => {});
}, 5000).unref();
child.on('exit', () => process.exit(0));
