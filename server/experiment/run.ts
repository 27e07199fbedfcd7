/**
 * One run of the experiment: a fresh system for one strategy (`tabswarm cluster`), a swarm of
 * worker tabs (`tabswarm swarm --json`), the failure schedule (SIGKILL of the single PS or the
 * chain's head through the supervisor, restart after the downtime), and the recorder sampling
 * accuracy, loss, updates, buffered gradients, CPU and memory of server and workers, and
 * gradients computed, once a second. t = 0 is the first applied update.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpFetchJson, probe, type ProbeTarget } from '../admin/probe.ts';
import { Recorder } from '../admin/recorder.ts';
import type { RunEvent, Sample } from '../admin/types.ts';
import type { SwarmSummaryRow } from '../swarm/swarm.ts';
import { spawnTabswarm, strayPids, type Child } from './children.ts';
import { TreeCpuMeter } from './proc.ts';
import type { ExperimentStrategy } from './strategies.ts';

export interface Schedule {
  /** Seconds after t = 0 at which the PS (or head) is SIGKILLed. */
  readonly kills: readonly number[];
  /** Seconds between a kill and the restart. */
  readonly downtime: number;
  /** Seconds of the run after t = 0. */
  readonly duration: number;
}

export interface RunSetup {
  readonly model: string;
  readonly dataset: string;
  readonly lr?: number;
  readonly batch?: number;
  readonly workers: number;
  readonly browsers: number;
  readonly backend: string;
  readonly evalEveryMs: number;
  readonly evalExamples: number;
  readonly sampleMs: number;
  /** Extra options for every node (`--rule`, `--buffer-mode`, ...). */
  readonly nodeArgs: readonly string[];
}

export interface RunRecord {
  readonly strategy: string;
  readonly label: string;
  readonly repeat: number;
  /** A run without failures, the reference for time-to-target. */
  readonly baseline: boolean;
  readonly schedule: Schedule;
  readonly setup: RunSetup;
  readonly startedAt: number;
  /** Seconds from starting the system to the first applied update. */
  readonly warmupSec: number;
  readonly samples: Sample[];
  readonly events: RunEvent[];
  readonly swarm: SwarmSummaryRow[];
}

export interface RunHooks {
  /** Called about once a second with the run's time (s since t = 0; negative while warming up). */
  onTick?: (t: number, latest: Sample | undefined) => void;
  /** Aborts the run (Ctrl-C). */
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve, reject) => {
  if (signal?.aborted) return reject(new Error('aborted'));
  const onAbort = () => (clearTimeout(t), reject(new Error('aborted')));
  const t = setTimeout(() => (signal?.removeEventListener('abort', onAbort), resolve()), ms);
  signal?.addEventListener('abort', onAbort, { once: true });
});

export async function runOnce(strategy: ExperimentStrategy, repeat: number, baseline: boolean, schedule: Schedule, setup: RunSetup, dir: string, hooks: RunHooks = {}): Promise<RunRecord> {
  mkdirSync(dir, { recursive: true });
  const token = randomBytes(18).toString('base64url');
  const auth = { authorization: `Bearer ${token}` };
  const args = [
    'cluster', '--port', '0', `--admin-token=${token}`, `--secret=${randomBytes(24).toString('base64url')}`, '--log-dir', join(dir, 'logs'),
    ...strategy.clusterArgs.map((a) => a.replace('{dir}', dir)),
    '--model', setup.model, '--dataset', setup.dataset, '--eval-every', String(setup.evalEveryMs), '--eval-examples', String(setup.evalExamples),
    ...(setup.lr !== undefined ? ['--lr', String(setup.lr)] : []), ...(setup.batch !== undefined ? ['--batch', String(setup.batch)] : []),
    '--log-level', 'warn', ...setup.nodeArgs,
  ];
  const started = Date.now();
  let cluster: Child | undefined;
  let swarm: Child | undefined;
  let recorder: Recorder | undefined;
  try {
    cluster = spawnTabswarm('cluster', args);
    const ready = await waitFor(() => {
      if (!cluster!.alive()) throw new Error(`tabswarm cluster exited: ${cluster!.output().slice(-3000)}`);
      return /console at (http:\/\/\S+)\/admin;.*nodes (http:\/\/\S+)/.exec(cluster!.output());
    }, 'the cluster to be ready', 180_000, hooks.signal);
    const consoleUrl = ready[1]!;
    const firstNode = ready[2]!;

    const nodes = async (): Promise<ProbeTarget[]> => {
      const res = await fetch(new URL('/api/admin/nodes', consoleUrl), { headers: auth, signal: AbortSignal.timeout(10000) });
      const body = (await res.json()) as { nodes: ProbeTarget[] };
      for (const n of body.nodes) if (n.pid) strayPids.add(n.pid);
      return body.nodes;
    };
    const admin = async (path: string) => {
      const res = await fetch(new URL(path, consoleUrl), { method: 'POST', headers: auth, signal: AbortSignal.timeout(180_000) });
      if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
      return res.json();
    };

    let gradients = 0;
    let tabsBuffered = 0;
    let summary: SwarmSummaryRow[] = [];
    swarm = spawnTabswarm('swarm', ['swarm', '--url', firstNode, '--workers', String(setup.workers), '--browsers', String(setup.browsers), '--backend', setup.backend, '--json'], (line) => {
      if (line.startsWith('{"t"')) ({ gradients, buffered: tabsBuffered } = JSON.parse(line) as { gradients: number; buffered: number });
      else if (line.startsWith('{"summary"')) summary = (JSON.parse(line) as { summary: SwarmSummaryRow[] }).summary;
    });

    const fetchJson = httpFetchJson(1500);
    let targets: ProbeTarget[] = await waitFor(() => nodes().catch(() => undefined), 'the supervisor to list its nodes', 60_000, hooks.signal);
    // Warm-up: tabs load the model and their shards; t = 0 is the first applied update.
    await waitFor(async () => {
      if (!swarm!.alive()) throw new Error(`tabswarm swarm exited: ${swarm!.output().slice(-3000)}`);
      hooks.onTick?.(-(Date.now() - started) / 1000, undefined);
      const snap = await probe(targets, fetchJson);
      return snap.nodes.some((n) => (n.updatesApplied ?? 0) > 0);
    }, 'the first applied update', 300_000, hooks.signal, 500);
    const warmupSec = (Date.now() - started) / 1000;

    const serverCpu = new TreeCpuMeter();
    const workerCpu = new TreeCpuMeter();
    recorder = new Recorder({
      everyMs: setup.sampleMs,
      look: async () => {
        targets = await nodes().catch(() => targets);
        return probe(targets, fetchJson);
      },
      extra: () => {
        const server = serverCpu.sample(targets.flatMap((n) => (n.pid && n.health !== 'down' ? [n.pid] : [])));
        const workers = workerCpu.sample(swarm?.proc.pid ? [swarm.proc.pid] : []);
        return { serverCpu: server.cpuPercent, serverRssMB: server.rssMB, workerCpu: workers.cpuPercent, workerRssMB: workers.rssMB, gradientsComputed: gradients, tabsBuffered };
      },
    });
    const rec = recorder;
    rec.start();
    const tick = setInterval(() => hooks.onTick?.(rec.now(), rec.samples.at(-1)), 1000);
    try {
      const kills = baseline ? [] : [...schedule.kills].sort((a, b) => a - b);
      for (const killAt of kills) {
        await sleep(Math.max(0, killAt * 1000 - (Date.now() - rec.startedAt)), hooks.signal);
        const snap = await probe(targets, fetchJson);
        // The node holding the authoritative state: the single PS, or the chain's head.
        const victim = snap.nodes.find((n) => n.health === 'up' && (n.role === 'head' || n.role === 'single')) ?? snap.nodes.find((n) => n.health === 'up');
        if (!victim) throw new Error(`no live node to kill at ${killAt} s`);
        rec.event('kill', `${victim.name} (${victim.role ?? 'node'}) SIGKILLed at model version ${victim.version ?? '?'}`, victim.name);
        await admin(`/api/admin/nodes/${victim.name}/kill`);
        await sleep(schedule.downtime * 1000, hooks.signal);
        rec.event('restart', `${victim.name} restarting after ${schedule.downtime} s down`, victim.name);
        const t = Date.now();
        await admin(`/api/admin/nodes/${victim.name}/restart`);
        rec.event('recovered', `${victim.name} serving again ${((Date.now() - t) / 1000).toFixed(1)} s after its restart`, victim.name);
      }
      await sleep(Math.max(0, schedule.duration * 1000 - (Date.now() - rec.startedAt)), hooks.signal);
      await rec.sample();
    } finally {
      clearInterval(tick);
      rec.stop();
    }
    await swarm.stop(20000);
    const record: RunRecord = {
      strategy: strategy.name, label: strategy.label, repeat, baseline, schedule, setup, startedAt: rec.startedAt, warmupSec,
      samples: rec.samples, events: rec.events, swarm: summary,
    };
    writeFileSync(join(dir, 'run.json'), JSON.stringify(record));
    writeFileSync(join(dir, 'series.csv'), rec.toCSV());
    return record;
  } finally {
    recorder?.stop();
    await swarm?.stop(20000);
    await cluster?.stop(20000);
  }
}

async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs: number, signal?: AbortSignal, everyMs = 250): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs, signal);
  }
}
