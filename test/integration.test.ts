/**
 * The foundation, end to end in real processes: a PS process and two Node worker processes
 * train mnist-mlp on MNIST to at least 90% test accuracy over WebSockets, on disjoint shards.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { latestAccuracy, spawnCli, startPs, until, type Proc, type PsProc, type Status } from './helpers.ts';

const opened: Proc[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

test('PS + 2 Node workers train mnist-mlp on MNIST to >= 90% test accuracy', { timeout: 240_000 }, async () => {
  const ps: PsProc = await startPs(['--model', 'mnist-mlp', '--dataset', 'mnist', '--eval-every', '2000', '--lr', '0.1', '--shards', '8']);
  opened.push(ps);
  const workers = [spawnCli(['worker', '--url', ps.url, '--seed', '1']), spawnCli(['worker', '--url', ps.url, '--seed', '2'])];
  opened.push(...workers);

  const status = await until(async () => {
    const s = await ps.get<Status>('/api/status');
    return s.workers.length === 2 && s.workers.every((w) => w.pushes > 0) ? s : undefined;
  }, 'both workers to push gradients', 60_000);
  // Disjoint shards that together cover the training set.
  const [a, b] = status.workers.map((w) => new Set(w.shards));
  assert.equal(a!.size + b!.size, 8);
  for (const s of a!) assert.ok(!b!.has(s), `shard ${s} assigned to both workers`);

  const reached = await until(async () => {
    const p = await latestAccuracy(ps);
    return p && p.accuracy >= 0.9 ? p : undefined;
  }, 'test accuracy >= 0.90', 180_000, 500);
  assert.ok(reached.accuracy >= 0.9);

  // Both workers kept contributing, and no frame was refused along the way.
  const final = await ps.get<Status>('/api/status');
  for (const w of final.workers) assert.ok(w.pushes > 50, `worker ${w.id} pushed only ${w.pushes} gradients`);
  const metrics = await (await fetch(new URL('/metrics', ps.url))).text();
  assert.doesNotMatch(metrics, /^tabswarm_frames_rejected_total\{/m);
});
