/**
 * A Node worker that reaches `--steps` during an outage drains before it exits (client/loop.ts
 * `drain`): real PS and worker processes, the PS SIGKILLed (or SIGSTOPped, then SIGKILLed).
 * - The PS comes back: the worker delivers its buffer as one flush, the new PS's /api/flushes
 *   shows it applied once, and the worker exits with nothing left.
 * - The PS never comes back: the worker exits once --drain-timeout-ms has passed and reports what
 *   was left, exactly: acks + the unacknowledged push + the buffered gradients = its steps.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { DrainReport } from '../client/status.ts';
import { exitWithin, killGroup, spawnCli, startPs, until, workerLines, type FlushRecord, type Proc } from './helpers.ts';

const SECRET = 'drain-test-secret-0123456789';
const STEPS = 800;
const opened: Proc[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

function psArgs(port?: number): string[] {
  return ['--strategy', 'stateless', '--secret', SECRET, '--model', 'mnist-mlp', '--dataset', 'mnist', '--rule', 'staleness', '--eval-every', '0', ...(port ? ['--port', String(port)] : [])];
}

type Line = Record<string, unknown> & { state?: string; steps?: number; buffered?: number; drain?: DrainReport };
const lines = (w: Proc) => workerLines(w) as Line[];
const done = (w: Proc) => lines(w).find((l) => l.done === true) as (Line & { acks: [number, number, number][]; flushLog: FlushRecord[]; worker: number }) | undefined;
/** Every ack the worker printed with --log-acks, the done line's included. */
const acksOf = (w: Proc) => lines(w).flatMap((l) => (l.acks as [number, number, number][] | undefined) ?? []);

/** Starts a worker to --steps STEPS and waits until it has pushed a few steps to the PS. */
async function pushingWorker(url: string, extra: string[]): Promise<Proc> {
  const w = spawnCli(['worker', '--url', url, '--steps', String(STEPS), '--seed', '3', '--log-every-ms', '200', '--log-acks', ...extra]);
  opened.push(w);
  await until(() => lines(w).some((l) => l.state === 'connected' && (l.steps ?? 0) >= 5), 'the worker to push 5 steps', 90_000, 100)
    .catch((err) => assert.fail(`${(err as Error).message}; worker: ${w.output().slice(-800)}`));
  return w;
}

test('--steps reached while the PS is down: the buffer is flushed to the PS that comes back before the worker exits', { timeout: 240_000 }, async () => {
  const ps1 = await startPs(psArgs());
  opened.push(ps1);
  const port = Number(new URL(ps1.url).port);
  const worker = await pushingWorker(ps1.url, ['--drain-timeout-ms', '120000']);
  await ps1.kill('SIGKILL');

  // The worker reaches --steps with the PS still down: it does not exit, it drains.
  const draining = await until(() => lines(worker).find((l) => l.state === 'draining'), 'the worker to reach --steps and start draining', 120_000, 100);
  assert.equal(draining.steps, STEPS);
  assert.ok((draining.buffered ?? 0) > 0, `gradients buffered when the drain began (${draining.buffered})`);
  assert.equal(worker.child.exitCode, null, 'still running while it has something to deliver');

  const ps2 = await startPs(psArgs(port));
  opened.push(ps2);
  assert.ok(await exitWithin(worker.child, 120_000), `the worker exits once drained; output: ${worker.output().slice(-800)}`);
  assert.equal(worker.child.exitCode, 0);
  const end = done(worker);
  assert.ok(end?.drain, `a done line with the drain report: ${worker.output().slice(-800)}`);
  const drain = end.drain;
  assert.equal(drain.outcome, 'drained');
  assert.equal(drain.left.outbox, undefined, 'no push left');
  assert.equal(drain.left.buffered, 0, 'no gradient left');
  assert.equal(drain.gradients, drain.owed.buffered + (drain.owed.outbox !== undefined ? 1 : 0), 'the drain delivered everything it owed');

  // The flush is the last entry of the worker's flush log, and the PS that came back applied it once.
  const flush = end.flushLog.at(-1)!;
  assert.ok(flush, 'the worker logged its flush');
  assert.equal(flush.count, drain.owed.buffered, 'one flush of every buffered gradient');
  assert.ok(drain.acks.some(([seq]) => seq === flush.seq), 'the flush was acknowledged during the drain');
  const { flushes } = await ps2.get<{ flushes: FlushRecord[] }>('/api/flushes');
  const applied = flushes.filter((f) => f.workerId === end.worker && f.seq === flush.seq && !f.duplicate);
  assert.equal(applied.length, 1, `the PS's /api/flushes shows the flush applied once: ${JSON.stringify(flushes)}`);
  assert.equal(applied[0]!.count, flush.count);
});

test('--steps reached and the PS never comes back: the worker exits after --drain-timeout-ms and reports what it left', { timeout: 240_000 }, async () => {
  const ps = await startPs(psArgs());
  opened.push(ps);
  const worker = await pushingWorker(ps.url, ['--request-timeout-ms', '1500', '--drain-timeout-ms', '3000']);
  // A stopped PS takes the push in flight (the kernel accepts it) and never answers: it is then
  // "unacknowledged" for sure, whatever the worker was doing when the PS stopped.
  killGroup(ps.child.pid!, 'SIGSTOP');
  await until(() => lines(worker).some((l) => l.state === 'buffering'), 'the worker to time out and buffer', 60_000, 100);
  await ps.kill('SIGKILL');

  assert.ok(await exitWithin(worker.child, 120_000), `the worker exits after the drain timeout; output: ${worker.output().slice(-800)}`);
  assert.equal(worker.child.exitCode, 0);
  const end = done(worker);
  assert.ok(end?.drain, `a done line with the drain report: ${worker.output().slice(-800)}`);
  const drain = end.drain;
  assert.equal(drain.outcome, 'timeout');
  assert.ok(drain.ms >= 3000, `drained for the whole timeout (${drain.ms} ms)`);
  assert.deepEqual(drain.acks, [], 'nothing acknowledged during the drain');
  const left = drain.left.outbox;
  assert.ok(left, 'the push in flight when the PS stopped is reported');
  assert.equal(left.state, 'unacknowledged', 'it was sent: the PS may hold it');
  assert.equal(left.flush, false);
  assert.ok(drain.left.buffered > 0, `buffered gradients reported (${drain.left.buffered})`);
  assert.equal(drain.left.buffered, drain.owed.buffered);

  // The ledger reconciles exactly: every step is acknowledged, the one push left, or buffered.
  const acks = acksOf(worker);
  assert.ok(acks.every(([seq]) => seq < left.seq), 'the push left is the last one sent');
  assert.equal(new Set(acks.map(([seq]) => seq)).size, acks.length, 'each push acknowledged once');
  assert.equal(acks.length + 1 + drain.left.buffered, STEPS, `acks ${acks.length} + 1 unacknowledged + ${drain.left.buffered} buffered = ${STEPS} steps`);
  const stopped = lines(worker).find((l) => l.state === 'stopped');
  assert.equal(stopped?.drain?.left.buffered, drain.left.buffered, 'the final status line reports it too');
});
