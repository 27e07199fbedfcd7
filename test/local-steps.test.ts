/**
 * Local steps with an outer optimizer (--local-steps H, DiLoCo-style; client/local-phase.ts,
 * server/ps/rules.ts outerRule), against real PS and worker processes:
 * - an update of H summed gradients moves the weights by exactly one Nesterov step of the outer
 *   optimizer on the delta innerLr x sum, not by its mean;
 * - a Node worker pushes one update per H steps, each of count H;
 * - through a SIGKILL of a stateless PS, the phase the outage cut is handed to the outage buffer
 *   and flushed once: applied exactly once, with every step it holds counted.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { JoinResponse, ModelInfo } from '../shared/api.ts';
import { MsgType, decodeFrame, encodeFrame } from '../shared/protocol.ts';
import { spawnCli, startPs, until, workerLines, type FlushRecord, type Proc, type Status } from './helpers.ts';

const opened: Proc[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

test('an update of H gradients is one outer Nesterov step on innerLr x their sum', async () => {
  const ps = await startPs(['--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--aggregator', 'none', '--lr', '0.05', '--local-steps', '4', '--outer-lr', '0.7', '--outer-momentum', '0.9']);
  opened.push(ps);
  const j = (await (await fetch(new URL('/api/join', ps.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as JoinResponse;
  assert.equal(j.localSteps, 4);
  assert.equal(j.lr, 0.05, 'workers step their own copy at the inner rate');
  assert.equal(j.bufferMode, 'local', 'an outage is a local phase too');
  const model = await ps.get<ModelInfo>('/api/model');
  assert.deepEqual(model.hyperparameters.outer, { lr: 0.7, momentum: 0.9, nesterov: true });

  const pull = async () => {
    const res = await fetch(new URL('/api/weights', ps.url), { headers: { authorization: `Bearer ${j.token}` } });
    return decodeFrame(new Uint8Array(await res.arrayBuffer()), { layoutHash: j.layoutHash, layoutSize: j.layoutSize });
  };
  const before = Float32Array.from((await pull()).payload);
  const sum = new Float32Array(j.layoutSize);
  for (let i = 0; i < sum.length; i++) sum[i] = Math.fround(((i % 13) - 6) * 1e-2);
  const res = await fetch(new URL('/api/push', ps.url), {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${j.token}` },
    body: Buffer.from(encodeFrame({ type: MsgType.PUSH, layoutHash: j.layoutHash, modelVersion: 0, workerId: j.workerId, seq: 1, count: 4 }, sum)),
  });
  assert.equal(res.status, 200);
  const after = await pull();
  assert.equal(after.modelVersion, 1, 'one update, one version');
  for (const i of [0, 5, 100, j.layoutSize - 1]) {
    // v = 0.9 * 0 + g, g = innerLr * sum; w -= outerLr * (g + 0.9 v): the optimizer's own expression order.
    const g = 0.05 * sum[i]!;
    const v = 0.9 * 0 + g;
    assert.equal(after.payload[i], Math.fround(before[i]! - 0.7 * (g + 0.9 * v)), `weight ${i}`);
  }
});

test('SIGKILL a stateless PS under local steps: each update holds H steps, the cut phase is flushed once with every step', { timeout: 240_000 }, async () => {
  const args = (port?: number) => ['--strategy', 'stateless', '--secret', 'local-steps-secret-0123456789', '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--local-steps', '5', ...(port ? ['--port', String(port)] : [])];
  const ps1 = await startPs(args());
  opened.push(ps1);
  const worker = spawnCli(['worker', '--url', ps1.url, '--seed', '3', '--log-every-ms', '200', '--log-acks']);
  opened.push(worker);
  const acks = () => workerLines(worker).flatMap((l) => (l.acks as [number, number, number][] | undefined) ?? []);
  await until(() => acks().length >= 6, 'six acknowledged local phases', 120_000, 100);
  const status = await ps1.get<Status & { workers: { pushes: number }[] }>('/api/status');
  assert.ok(status.version >= 6);
  // Each update held five steps: acked updates trail steps by a factor of five (one phase may be
  // under way). Read at one moment: a status line and the acks printed before it.
  let pair = { steps: 0, acked: 0 };
  let acked = 0;
  for (const l of workerLines(worker)) {
    acked += ((l.acks as unknown[] | undefined) ?? []).length;
    if ('steps' in l) pair = { steps: Number(l.steps), acked };
  }
  assert.ok(pair.acked >= 1 && pair.steps >= 5 * pair.acked && pair.steps < 5 * (pair.acked + 2), `steps ${pair.steps} vs ${pair.acked} acked updates`);

  await ps1.kill('SIGKILL');
  const outageFrom = Number(workerLines(worker).filter((l) => 'outageSteps' in l).at(-1)!.outageSteps);
  await until(() => workerLines(worker).some((l) => l.state === 'buffering' && Number(l.outageSteps) >= outageFrom + 12), 'the worker to take 12 steps during the outage', 60_000, 100);
  const ps2 = await startPs(args(Number(new URL(ps1.url).port)));
  opened.push(ps2);
  const flush = await until(() => workerLines(worker).find((l) => l.lastFlush !== undefined && l.state === 'connected')?.lastFlush as FlushRecord | undefined, 'the worker to flush', 60_000, 100);
  assert.ok(flush.count >= 12, `the flush holds every step of the outage (and of the cut phase): ${flush.count}`);
  const { flushes } = await ps2.get<{ flushes: FlushRecord[] }>('/api/flushes');
  const applied = flushes.filter((f) => f.workerId === flush.workerId && f.seq === flush.seq && !f.duplicate);
  assert.equal(applied.length, 1, 'applied exactly once');
  assert.equal(applied[0]!.count, flush.count);
  // Training goes on in phases of five after the flush.
  const n = acks().length;
  await until(() => acks().length >= n + 3, 'three more phases after the flush', 60_000, 100);
});
