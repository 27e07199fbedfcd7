/**
 * The nemesis, long: `npm run bench:nemesis [-- --node-kills 50 --node-pauses 10 --zk-pauses 10
 * --zk-kills 3 --leader-kills 3 --async-kills 10 --seed 1]`.
 *
 * 1. sync: a chain of 3 `tabswarm node`s (mnist-mlp, synthetic data) on a 3-server ZooKeeper
 *    ensemble, --workers Node workers pushing throughout, and a schedule shuffled by --seed:
 *    SIGKILLs of the head, middle and tail (each replaced by a fresh node), SIGSTOP/SIGCONT of
 *    nodes for two session timeouts, SIGSTOP of a ZooKeeper server for 0.6 of one, SIGKILL and
 *    restart of a ZooKeeper server, SIGKILL of the ensemble's leader (found with `srvr`). Then the
 *    workers drain and the ledger checker (server/nemesis/checker.ts) judges: 0 acknowledged
 *    pushes lost, 0 applied twice, versions 1..V, replicas bitwise identical. Failover = fault to
 *    the next committed update; median and p99 per fault and over every node kill.
 * 2. async (--async-window): --async-kills SIGKILLs of the head; what the checker finds lost
 *    (acknowledged, never applied by the survivors) against the window's bound.
 * The nemesis stops at the first fault the chain does not recover from; the ledger is checked
 * on what it reached and the run says where it stopped. Exit code 1 on a broken promise.
 */
import { checkLedger, describeVerdict, type Verdict } from '../server/nemesis/checker.ts';
import { schedule, tally, type FaultName } from '../server/nemesis/faults.ts';
import { Nemesis, percentiles, type FaultRecord } from '../server/nemesis/runner.ts';
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { startZooKeeper } from '../server/zk/launcher.ts';
import { nodeWorkerAcks, startNode } from '../test/chain-tools.ts';
import { spawnCli, workerLines, type Proc } from '../test/helpers.ts';
import { machineLine, printTable } from './sys.ts';

const OPTIONS = defineOptions({
  mode: { type: 'list', of: 'string', arg: 'sync,async', default: ['sync', 'async'], help: 'which runs' },
  nodeKills: { type: 'int', min: 0, default: 50, help: 'sync: SIGKILLs of nodes, split over head, middle and tail' },
  nodePauses: { type: 'int', min: 0, default: 10, help: 'sync: SIGSTOPs of nodes for two session timeouts, split over tail, middle and head' },
  zkPauses: { type: 'int', min: 0, default: 10, help: 'sync: SIGSTOPs of a ZooKeeper server for 0.6 of a session timeout' },
  zkKills: { type: 'int', min: 0, default: 3, help: 'sync: SIGKILL and restart of a ZooKeeper server' },
  leaderKills: { type: 'int', min: 0, default: 3, help: 'sync: SIGKILLs of the ensemble leader (needs --zk-servers 3)' },
  asyncKills: { type: 'int', min: 0, default: 10, help: 'async: SIGKILLs of the head' },
  asyncWindow: { type: 'int', min: 1, default: 32, help: 'async: the nodes\' --async-window' },
  zkServers: { type: 'int', min: 1, max: 9, default: 3, help: 'ZooKeeper servers (1 = standalone)' },
  zkSessionMs: { type: 'int', min: 500, arg: 'MS', default: 2000, help: 'the nodes\' --zk-session-ms' },
  workers: { type: 'int', min: 1, default: 2, help: 'Node workers pushing' },
  seed: { type: 'int', min: 0, default: 1, help: 'schedule shuffle seed (replays a run)' },
  batch: { type: 'int', min: 1, default: 64, help: 'worker batch (64, the model default: about 25 pushes/s from 2 workers; the first recorded runs used 512, set while a new head could refuse a large first flush, fixed since)' },
});
const opts = parseCommandLine(OPTIONS, 'npm run bench:nemesis -- [options]: chain replication under a fault schedule, judged by a ledger checker (docs/chain.md#nemesis)');

/** `n` split as evenly as possible over `names`, the first ones taking the remainder. */
function split(n: number, names: FaultName[]): Partial<Record<FaultName, number>> {
  return Object.fromEntries(names.map((name, i) => [name, Math.floor(n / names.length) + (i < n % names.length ? 1 : 0)]));
}

interface RunResult {
  mode: string;
  records: FaultRecord[];
  planned: number;
  stoppedAt?: string;
  verdict: Verdict;
  drains: string[];
  seconds: number;
}

async function run(mode: 'sync' | 'async', counts: Partial<Record<FaultName, number>>): Promise<RunResult> {
  const started = performance.now();
  const faults = schedule(counts, opts.seed);
  console.log(`\n== ${mode}: ${faults.length} faults ${JSON.stringify(tally(faults))}, seed ${opts.seed}`);
  const zk = await startZooKeeper({ servers: mode === 'sync' ? opts.zkServers : 1 });
  const args = ['--model', 'mnist-mlp', '--dataset', 'synthetic', '--replication', mode, '--async-window', String(opts.asyncWindow), '--zk-session-ms', String(opts.zkSessionMs), '--mesh-peers', '0', '--batch', String(opts.batch)];
  const cluster = `nemesis-${mode}-${Date.now()}`;
  const nemesis = new Nemesis({ zk, size: 3, sessionMs: opts.zkSessionMs, startNode: () => startNode(zk.connectionString, cluster, args), log: (l) => console.log(l), timeoutMs: 120_000 });
  const workers: Proc[] = [];
  let stoppedAt: string | undefined;
  try {
    const chain = await nemesis.start();
    for (let i = 0; i < opts.workers; i++) workers.push(spawnCli(['worker', '--url', chain.nodes[i % 3]!.url, '--log-acks', '--seed', String(i + 1), '--log-every-ms', '1000']));
    try {
      await nemesis.run(faults);
    } catch (err) {
      stoppedAt = `after ${nemesis.records.length} of ${faults.length} faults: ${(err as Error).message}`;
      console.log(`STOPPED ${stoppedAt}\nnodes:\n${await nemesis.describe().catch((e: Error) => e.message)}`);
      for (const w of workers) console.log(`worker tail: ${w.output().slice(-800)}`);
    }
    for (const w of workers) await w.kill('SIGTERM', 60_000);
    const drains = workers.map((w) => String((workerLines(w).find((l) => l.done === true) as { drain?: { outcome: string } } | undefined)?.drain?.outcome ?? `no done line (exit ${w.child.exitCode})`));
    const histories = await nemesis.histories();
    const acks = workers.flatMap(nodeWorkerAcks).map(([worker, seq, version, dup]) => ({ worker, seq, version, duplicate: !!dup }));
    const verdict = checkLedger(acks, histories);
    return { mode, records: nemesis.records, planned: faults.length, ...(stoppedAt ? { stoppedAt } : {}), verdict, drains, seconds: (performance.now() - started) / 1000 };
  } finally {
    for (const w of workers) await w.kill('SIGKILL');
    await nemesis.stop();
    await zk.stop();
  }
}

function report(r: RunResult): void {
  const rows = [['fault', 'count', 'recovery median ms', 'p99 ms', 'max ms', 'settled median ms']];
  const byName = new Map<string, FaultRecord[]>();
  for (const rec of r.records) byName.set(rec.name, [...(byName.get(rec.name) ?? []), rec]);
  const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  for (const [name, recs] of byName) {
    const p = percentiles(recs.map((x) => x.recoveredMs ?? NaN));
    rows.push([name, String(recs.length), fmt(p.median), fmt(p.p99), fmt(p.max), fmt(percentiles(recs.map((x) => x.settledMs)).median)]);
  }
  const kills = r.records.filter((x) => x.name.startsWith('kill-') && !x.name.includes('zk'));
  const fo = percentiles(kills.map((x) => x.recoveredMs ?? NaN));
  rows.push(['node SIGKILLs (failover)', String(kills.length), fmt(fo.median), fmt(fo.p99), fmt(fo.max), '']);
  console.log(`\n${r.mode}: ${r.records.length}/${r.planned} faults survived in ${r.seconds.toFixed(0)} s${r.stoppedAt ? `; STOPPED ${r.stoppedAt}` : ''}`);
  printTable(rows, 1);
  console.log(`worker drains: ${r.drains.join(', ')}`);
  console.log(`verdict: ${describeVerdict(r.verdict)}`);
  if (r.mode === 'async') {
    const v = r.verdict;
    console.log(`async: ${v.lost.length} acknowledged pushes lost over ${kills.length} head SIGKILLs (bound ${opts.asyncWindow} per head failure, ${opts.asyncWindow * kills.length} in all); applied twice ${v.appliedTwice.length}, gaps ${v.gaps.length}, divergent replicas ${v.divergent.length}, acks whose version another push took ${v.repeats.length}`);
  }
}

console.log(machineLine());
console.log(`options: ${JSON.stringify(opts)}`);
const results: RunResult[] = [];
if (opts.mode.includes('sync')) {
  const counts = {
    ...split(opts.nodeKills, ['kill-head', 'kill-middle', 'kill-tail']),
    ...split(opts.nodePauses, ['pause-tail', 'pause-middle', 'pause-head']),
    'pause-zk': opts.zkPauses,
    'kill-zk': opts.zkKills,
    'kill-zk-leader': opts.zkServers > 1 ? opts.leaderKills : 0,
  };
  results.push(await run('sync', counts));
}
if (opts.mode.includes('async')) results.push(await run('async', { 'kill-head': opts.asyncKills }));
for (const r of results) report(r);
// Sync promises everything; async promises all but the lost acks (bounded by the window).
const broken = results.some((r) => r.stoppedAt || (r.mode === 'sync' ? !r.verdict.ok : r.verdict.appliedTwice.length || r.verdict.gaps.length || r.verdict.divergent.length));
process.exitCode = broken ? 1 : 0;
