/**
 * The checkpoint strategy inside the real PS loop (buildServer, ParameterServer.handle): a sync
 * write holds applies from every worker, not only the one whose update triggered it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MsgType, decodeFrame, encodeFrame } from '../../../shared/protocol.ts';
import { buildServer } from '../../app.ts';
import { loadDataset } from '../../data.ts';
import type { WorkerSession } from '../../ps/sessions.ts';
import { CHECKPOINT_DEFAULTS } from './options.ts';
import { FileStorage } from './storage.ts';
import { checkpointStrategy } from './strategy.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('checkpoint strategy in the PS loop', () => {
  test('sync: while a checkpoint is written, no worker\'s update is applied', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tabswarm-ckloop-'));
    dirs.push(dir);
    const strategy = checkpointStrategy(
      { ...CHECKPOINT_DEFAULTS, checkpointMode: 'sync', checkpointEvery: 2, model: 'mnist-logreg' },
      { storage: new FileStorage(dir, { testPauseMs: 400 }) },
    );
    const { app, ps } = await buildServer({ model: 'mnist-logreg', dataset: 'synthetic', data: loadDataset('synthetic'), evalEveryMs: 0, strategyInstance: strategy });
    try {
      const grad = new Float32Array(ps.layout.size).fill(0.01);
      const push = (s: WorkerSession, seq: number) =>
        ps.handle(s, encodeFrame({ type: MsgType.PUSH, layoutHash: ps.layout.hash, modelVersion: ps.store.version, workerId: s.id, seq, count: 1 }, grad), 'http')
          .then((ack) => decodeFrame(ack, { layoutHash: ps.layout.hash, layoutSize: ps.layout.size, maxBytes: 1 << 20, maxRecordEntries: 16 }).modelVersion);
      const a = ps.join('a');
      const b = ps.join('b');
      assert.equal(await push(a, 1), 1);
      let aAcked = false;
      let bAcked = false;
      const second = push(a, 2).then((v) => ((aAcked = true), v)); // the 2nd update: a sync checkpoint, paused 400 ms
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(ps.store.held, 'the store is held during the write');
      const other = push(b, 1).then((v) => ((bAcked = true), v));
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(ps.store.version, 2, 'worker b\'s update waits for the checkpoint');
      assert.equal(aAcked || bAcked, false, 'neither update is acknowledged before the checkpoint is durable');
      assert.equal(await second, 2);
      assert.equal(await other, 3);
      const status = strategy.status() as { lastCheckpoint: { storeVersion: number } };
      assert.equal(status.lastCheckpoint.storeVersion, 2);
    } finally {
      await app.close();
    }
  });
});
