/**
 * The experiment harness end to end on a tiny schedule: two strategies (sync checkpointing and
 * the stateless PS), one worker tab each, the PS SIGKILLed at 5 s and restarted 3 s later, 30 s
 * per run. Checks what was measured, not just that files exist: no accuracy while the PS is
 * down, tabs computing gradients through the outage, a checkpoint restart (checkpoints every 50
 * updates) resuming from the last checkpoint written before the kill, the stateless PS resuming
 * from the workers' copy, and accuracy right after recovery not rolled back; then that a second
 * invocation keeps the finished runs (resume) and re-renders the report.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RunMetrics } from '../server/experiment/analysis.ts';
import type { RunRecord } from '../server/experiment/run.ts';
import { spawnCli, until, type Proc } from './helpers.ts';

/** Checkpoints every K updates: several are written before the kill at 5 s, so "resumed from 0" is a failure. */
const K = 50;
const CK = `sync-checkpoint+checkpoint-every=${K}`;
/** The run's name and label for CK (server/experiment/strategies.ts). */
const CK_NAME = `sync-checkpoint+checkpoint-every_${K}`;
const CK_LABEL = `sync checkpoint (checkpoint-every ${K})`;
const ARGS = ['--strategies', `${CK},stateless`, '--kills', '5', '--downtime', '3', '--duration', '30', '--model', 'mnist-logreg', '--dataset', 'mnist',
  '--workers', '1', '--backend', 'wasm', '--baseline', 'no', '--eval-every', '1000', '--eval-examples', '2000', '--target', '0.8'];

function parseCsv(text: string): Record<string, string>[] {
  const [header, ...rows] = text.trim().split('\n');
  const cols = header!.split(',');
  // The events column is last and may be quoted; the numeric columns before it never are.
  return rows.map((r) => Object.fromEntries(cols.map((c, i) => [c, i < cols.length - 1 ? r.split(',')[i]! : r.split(',').slice(cols.length - 1).join(',')])));
}

describe('tabswarm experiment (tiny schedule, real processes and tabs)', () => {
  let out: string;
  let proc: Proc;

  before(async () => {
    out = await mkdtemp(join(tmpdir(), 'tabswarm-experiment-'));
    proc = spawnCli(['experiment', ...ARGS, '--out', out]);
    await until(() => proc.child.exitCode !== null || proc.child.signalCode !== null, 'the experiment to finish', 170_000, 500);
    assert.equal(proc.child.exitCode, 0, proc.output().slice(-4000));
    assert.doesNotMatch(proc.output(), /FAILED/, proc.output().slice(-4000));
  });
  after(async () => {
    await proc?.kill('SIGKILL');
    await rm(out, { recursive: true, force: true });
  });

  test('one CSV per run, with no accuracy while the PS is down and tabs training through the outage', async () => {
    for (const strategy of [CK_NAME, 'stateless']) {
      const rows = parseCsv(await readFile(join(out, `${strategy}-r1.csv`), 'utf8'));
      assert.ok(rows.length >= 20, `${strategy}: ${rows.length} rows`);
      const before = rows.filter((r) => Number(r.t) < 5 && r.accuracy !== '');
      assert.ok(before.length >= 2 && Number(before.at(-1)!.accuracy) > 0.5, `${strategy}: trained before the kill (${before.at(-1)?.accuracy})`);
      const down = rows.filter((r) => r.nodesUp === '0');
      assert.ok(down.length >= 3, `${strategy}: samples with the PS down`);
      assert.ok(down.every((r) => r.accuracy === '' && r.version === ''), 'nothing to evaluate while the PS is down');
      assert.ok(Number(down.at(-1)!.gradientsComputed) > Number(down[0]!.gradientsComputed), `${strategy}: the tab computed gradients during the outage`);
      assert.ok(down.some((r) => Number(r.tabsBuffered) > 0), `${strategy}: the tab buffered them`);
      const up = rows.filter((r) => r.nodesUp === '1');
      // A sample can pair a node that answers with the PID list of a moment before (the node
      // restarting in between): most, not all, rows.
      assert.ok(up.filter((r) => Number(r.serverRssMB) > 20).length >= 0.9 * up.length, 'PS memory measured while it runs');
      assert.ok(up.some((r) => Number(r.serverCpu) > 0) && rows.some((r) => Number(r.workerCpu) > 0), 'CPU measured');
      assert.ok(rows.some((r) => /kill node-1/.test(r.events!)), 'the kill is marked');
    }
  });

  test('what each strategy resumed from, in run.json and metrics.json', async () => {
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8')) as { metrics: RunMetrics[] };
    const ck = metrics.metrics.find((m) => m.strategy === CK_NAME)!;
    const sl = metrics.metrics.find((m) => m.strategy === 'stateless')!;
    for (const m of [ck, sl]) {
      const run = JSON.parse(await readFile(join(out, 'runs', m.strategy, 'r1', 'run.json'), 'utf8')) as RunRecord;
      const kill = run.events.find((e) => e.kind === 'kill')!;
      const lastThree = run.samples.filter((x) => x.t < kill.t && typeof x.accuracy === 'number').slice(-3).map((x) => x.accuracy as number);
      // Every figure this test judges, printed before it judges them: a failure in CI names the
      // assertion, and this line says how far off the run was.
      console.log(`${m.strategy}: ${JSON.stringify({ kill: kill.detail, lastThree, kills: m.kills, events: run.events.map((e) => e.kind) })}`);
      assert.equal(m.kills.length, 1);
      assert.ok(m.kills[0]!.failoverSec !== null && m.kills[0]!.failoverSec >= 3, `${m.strategy}: training resumed after the downtime (${m.kills[0]!.failoverSec})`);
      // Not rolled back to the initial weights: the first evaluation after recovery is about as
      // good as the model was before the kill (retraining from scratch starts near chance, 0.1).
      // "Before" is the worst of the last three evaluations, not the last one: mnist-logreg at
      // this lr swings by 0.1 between evaluations a second apart with no failure at all (seen:
      // 0.853, 0.757, 0.874), so one instant against another fails on the model's own noise.
      const { accBefore, accAfter } = m.kills[0]!;
      assert.ok(accBefore !== null && lastThree.length === 3, `${m.strategy}: evaluated before the kill`);
      assert.ok(accAfter !== null && accAfter >= Math.min(...lastThree) - 0.1, `${m.strategy}: accuracy ${lastThree.join(', ')} before the kill, ${accAfter} right after recovery`);
      assert.ok(m.gradientsComputed! > 0 && m.updatesApplied > 0);
    }
    // The restarted PS resumes from the last checkpoint written before the kill. The harness
    // reads the victim's version just before the SIGKILL: a sync checkpoint of a version below
    // it is on disk (the write holds the apply loop). Between that read and the SIGKILL (a few
    // local HTTP calls) the PS may cross one more checkpoint, not two (K updates take over
    // 150 ms even at the fastest rate seen here, about 280 updates/s).
    const ckRun = JSON.parse(await readFile(join(out, 'runs', CK_NAME, 'r1', 'run.json'), 'utf8')) as RunRecord;
    const kill = ckRun.events.find((e) => e.kind === 'kill')!;
    const atKill = Number(/at model version (\d+)/.exec(kill.detail)?.[1]);
    const resumedFrom = ck.kills[0]!.resumedFrom!;
    const lastWritten = Math.floor((atKill - 1) / K) * K;
    console.log(`checkpoint: killed at version ${atKill}, resumed from ${resumedFrom}`);
    assert.ok(atKill > K, `the PS applied ${atKill} updates before the kill: more than one checkpoint interval`);
    assert.equal(resumedFrom % K, 0, `resumed from ${resumedFrom}, not a checkpoint (multiple of ${K})`);
    assert.ok(resumedFrom === lastWritten || resumedFrom === lastWritten + K, `resumed from ${resumedFrom}; the last checkpoint before the kill at ${atKill} is ${lastWritten}`);
    assert.ok(resumedFrom <= atKill + K - 1);
    // The stateless PS adopts the copy of the weights the tab holds: at most a few pushes behind.
    assert.ok(sl.kills[0]!.updatesLost! <= 5, `stateless lost ${sl.kills[0]!.updatesLost}`);
    const run = JSON.parse(await readFile(join(out, 'runs', 'stateless', 'r1', 'run.json'), 'utf8')) as RunRecord;
    assert.deepEqual(run.events.filter((e) => ['kill', 'restart', 'recovered'].includes(e.kind)).map((e) => e.kind), ['kill', 'restart', 'recovered']);
    assert.ok(run.swarm.length === 1 && run.swarm[0]!.backend === 'wasm' && run.swarm[0]!.steps > 0, JSON.stringify(run.swarm));
  });

  test('figures rendered by Vega-Lite, and the summary table', async () => {
    for (const f of ['accuracy-one-kill.svg', 'accuracy.svg', 'cpu.svg', 'memory.svg', 'gradients.svg']) {
      const svg = await readFile(join(out, f), 'utf8');
      assert.match(svg, /^<svg[^>]+class="marks"/, f);
      assert.ok(svg.includes('sync checkpoint') && svg.includes('stateless') && svg.includes('kill'), `${f}: legend names the strategies and the kill`);
    }
    const md = await readFile(join(out, 'summary.md'), 'utf8');
    assert.match(md, /\| strategy \| runs \| acc before kill 1 \(5 s\) \| acc after recovery 1 \|/);
    assert.match(md, new RegExp(`\\n\\| ${CK_LABEL.replace(/[()]/g, '\\$&')} \\| 1 \\| 0\\.\\d{3} \\| 0\\.\\d{3} \\| \\d+\\.\\d \\| \\d+ \\|`));
    assert.match(md, /\n\| stateless \| 1 \| 0\.\d{3} \| 0\.\d{3} \| \d+\.\d \| \d+ \|/);
  });

  test('a second invocation keeps the finished runs and re-renders the report', async () => {
    const again = spawnCli(['experiment', ...ARGS, '--out', out, '--report-only']);
    await until(() => again.child.exitCode !== null, 'the report', 60_000, 200);
    assert.equal(again.child.exitCode, 0, again.output());
    assert.ok(again.output().includes(`${CK_NAME} r1/1: kept from an earlier run`), again.output());
    assert.match(again.output(), /stateless r1\/1: kept from an earlier run/);
    assert.ok(existsSync(join(out, 'summary.md')));
  });
});

/** PIDs of live processes whose environment carries `tag` (children inherit it, browsers too). */
function processesTagged(tag: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').includes(tag)) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

describe('tabswarm experiment interrupted', () => {
  test('Ctrl-C mid-run stops the supervisor, its nodes and the browsers, and exits 130', async () => {
    const out = await mkdtemp(join(tmpdir(), 'tabswarm-experiment-int-'));
    const tag = `TABSWARM_TEARDOWN_TAG=${process.pid}-${Date.now()}`;
    const proc = spawnCli(['experiment', '--strategies', 'stateless', '--kills', '5', '--downtime', '3', '--duration', '60', '--model', 'mnist-logreg',
      '--dataset', 'synthetic', '--workers', '1', '--backend', 'wasm', '--baseline', 'no', '--out', out], { TABSWARM_TEARDOWN_TAG: tag.split('=')[1]! });
    try {
      await until(() => /run 1\/1 stateless r1\/1 \[[#.]+\] \d+\/60 s/.test(proc.output()), 'the run to be under way', 120_000, 250);
      const before = processesTagged(tag);
      assert.ok(before.length >= 4, `experiment, cluster, node, swarm and browser processes: ${before.length}`);
      proc.child.kill('SIGINT');
      await until(() => proc.child.exitCode !== null, 'the experiment to exit', 60_000, 200);
      assert.equal(proc.child.exitCode, 130, proc.output().slice(-2000));
      assert.match(proc.output(), /interrupted; stopping every process/);
      await until(() => processesTagged(tag).length === 0, `no process left (${processesTagged(tag).join(' ')})`, 30_000, 250);
    } finally {
      await proc.kill('SIGKILL');
      for (const pid of processesTagged(tag)) process.kill(pid, 'SIGKILL');
      await rm(out, { recursive: true, force: true });
    }
  });
});
