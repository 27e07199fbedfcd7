/**
 * Shard assignment across real processes: two Node workers get disjoint shards; when one is
 * killed (SIGKILL, no goodbye) the PS notices it is gone and hands its shards to the survivor,
 * which loads them and keeps training. Shard downloads need a worker's credentials.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { shardPath, type JoinResponse } from '../shared/api.ts';
import { spawnCli, startPs, until, type Proc, type Status } from './helpers.ts';

const opened: Proc[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

test("a SIGKILLed worker's shards are reassigned to the surviving worker", { timeout: 120_000 }, async () => {
  const ps = await startPs(['--model', 'mnist-logreg', '--dataset', 'synthetic', '--shards', '4', '--idle-ms', '1000', '--eval-every', '0']);
  opened.push(ps);
  const a = spawnCli(['worker', '--url', ps.url, '--seed', '1']);
  const b = spawnCli(['worker', '--url', ps.url, '--seed', '2']);
  opened.push(a, b);
  const both = await until(async () => {
    const s = await ps.get<Status>('/api/status');
    return s.workers.length === 2 && s.workers.every((w) => w.pushes > 0) ? s : undefined;
  }, 'two workers pushing', 60_000);
  const [wa, wb] = both.workers;
  assert.equal(wa!.shards.length, 2);
  assert.equal(wb!.shards.length, 2);
  assert.deepEqual([...wa!.shards, ...wb!.shards].sort(), [0, 1, 2, 3]);

  const bId = Number(/"worker":([1-9]\d*)/.exec(b.output())?.[1]);
  await b.kill('SIGKILL');
  const survivorId = both.workers.find((w) => w.id !== bId)!.id;
  const after = await until(async () => {
    const s = await ps.get<Status>('/api/status');
    return s.workers.length === 1 && s.workers[0]!.shards.length === 4 ? s : undefined;
  }, 'the killed worker to be dropped and its shards reassigned', 30_000);
  assert.equal(after.workers[0]!.id, survivorId);
  // The survivor learned of its new shards, loaded them, and kept pushing.
  await until(() => /"shards":\[0,1,2,3\]/.test(a.output()), 'the surviving worker to train on all four shards', 30_000);
  const pushes = after.workers[0]!.pushes;
  await until(async () => (await ps.get<Status>('/api/status')).workers[0]!.pushes > pushes + 10, 'the survivor to keep pushing', 30_000);
});

test('shard downloads need a worker: a session token or a valid id tag; anyone else is refused', async () => {
  const ps = await startPs(['--model', 'mnist-logreg', '--dataset', 'synthetic', '--shards', '4', '--eval-every', '0']);
  opened.push(ps);
  const j = (await (await fetch(new URL('/api/join', ps.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as JoinResponse;
  const shard = new URL(shardPath(j.dataKey, j.shards[0]!), ps.url);
  const anonymous = await fetch(shard);
  assert.equal(anonymous.status, 401);
  assert.equal(((await anonymous.json()) as { code: string }).code, 'PS_NO_SESSION');
  const forged = await fetch(shard, { headers: { authorization: `Worker ${j.workerId}:${'0'.repeat(64)}` } });
  assert.equal(forged.status, 401, 'an id tag that does not verify');
  const withToken = await fetch(shard, { headers: { authorization: `Bearer ${j.token}` } });
  assert.equal(withToken.status, 200);
  const bytes = new Uint8Array(await withToken.arrayBuffer());
  assert.ok(bytes.byteLength > 0);
  const withTag = await fetch(shard, { headers: { authorization: `Worker ${j.workerId}:${j.idTag}` } });
  assert.equal(withTag.status, 200);
  assert.deepEqual(new Uint8Array(await withTag.arrayBuffer()), bytes);
});
