/**
 * A worker that stops in the middle of a local phase (--local-steps H, client/local-phase.ts)
 * delivers the phase's steps in its drain instead of dropping them (client/loop.ts hands the
 * phase to the outage buffer before the drain): real PS and worker processes. With H = 5 and
 * --steps 13 the worker pushes two phases of five, then flushes the three steps of the third
 * once; every step it took reaches the PS, applied exactly once.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { DrainReport } from '../client/status.ts';
import { exitWithin, spawnCli, startPs, workerLines, type FlushRecord, type Proc, type Status } from './helpers.ts';

const H = 5;
const STEPS = 13;
const opened: Proc[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

test('a worker stopped mid-phase flushes the phase in its drain: every step reaches the PS once', { timeout: 120_000 }, async () => {
  const ps = await startPs(['--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--local-steps', String(H)]);
  opened.push(ps);
  const worker = spawnCli(['worker', '--url', ps.url, '--steps', String(STEPS), '--seed', '3', '--log-every-ms', '200', '--log-acks']);
  opened.push(worker);
  assert.ok(await exitWithin(worker.child, 90_000), `the worker exits after --steps ${STEPS}; output: ${worker.output().slice(-800)}`);
  assert.equal(worker.child.exitCode, 0, worker.output().slice(-800));
  const end = workerLines(worker).find((l) => l.done === true) as { drain?: DrainReport; flushLog: FlushRecord[]; worker: number; steps: number } | undefined;
  assert.ok(end?.drain, `a done line with the drain report: ${worker.output().slice(-800)}`);
  const drain = end.drain;
  const cut = STEPS % H;
  assert.equal(drain.owed.buffered, cut, 'the cut phase was owed, not dropped');
  assert.equal(drain.outcome, 'drained');
  assert.equal(drain.left.buffered, 0);
  assert.equal(drain.left.outbox, undefined);

  const flush = end.flushLog.at(-1);
  assert.ok(flush, 'the worker logged its flush');
  assert.equal(flush.count, cut, 'one flush of the steps the phase held');
  assert.ok(drain.acks.some(([seq]) => seq === flush.seq), 'acknowledged during the drain');
  const { flushes } = await ps.get<{ flushes: FlushRecord[] }>('/api/flushes');
  const applied = flushes.filter((f) => f.workerId === end.worker && f.seq === flush.seq && !f.duplicate);
  assert.equal(applied.length, 1, `applied once: ${JSON.stringify(flushes)}`);
  assert.equal(applied[0]!.count, cut);
  // Two whole phases and the flush: three updates holding all thirteen steps.
  const status = await ps.get<Status>('/api/status');
  assert.equal(status.version, Math.floor(STEPS / H) + 1);
});
