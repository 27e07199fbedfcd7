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
import { FileStorage, type CheckpointStorage } from './storage.ts';
import { checkpointStrategy } from './strategy.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/**
 * File storage whose writes wait at a gate the test opens: the checkpoint write lasts exactly
 * as long as the test needs, instead of a fixed pause that a loaded machine might outlast.
 */
class GatedStorage implements CheckpointStorage {
  readonly inner: FileStorage;
  private started!: () => void;
  /** Resolves when the first armed write has begun (and is waiting at the gate). */
  readonly writing = new Promise<void>((r) => (this.started = r));
  open!: () => void;
  private readonly gate = new Promise<void>((r) => (this.open = r));
  constructor(where: string) {
    this.inner = new FileStorage(where);
  }
  get where() {
    return this.inner.where;
  }
  get bytesWritten() {
    return this.inner.bytesWritten;
  }
  /** Writes pass freely until the test arms the gate. */
  armed = false;
  async write(name: string, chunks: readonly Uint8Array[]): Promise<number> {
    if (this.armed) {
      this.started();
      await this.gate;
    }
    return this.inner.write(name, chunks);
  }
  list(folder: string) {
    return this.inner.list(folder);
  }
  read(name: string) {
    return this.inner.read(name);
  }
  remove(name: string) {
    return this.inner.remove(name);
  }
  sweep(folders: readonly string[]) {
    return this.inner.sweep(folders);
  }
}

/** Rejects with `what` if `p` has not settled within `ms` (every wait here has a bound). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('checkpoint strategy in the PS loop', () => {
  test('sync: while a checkpoint is written, no worker\'s update is applied', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tabswarm-ckloop-'));
    dirs.push(dir);
    const storage = new GatedStorage(dir);
    const strategy = checkpointStrategy({ ...CHECKPOINT_DEFAULTS, checkpointMode: 'sync', checkpointEvery: 2, model: 'mnist-logreg' }, { storage });
    const { app, ps } = await buildServer({ model: 'mnist-logreg', dataset: 'synthetic', data: loadDataset('synthetic'), evalEveryMs: 0, strategyInstance: strategy });
    try {
      const grad = new Float32Array(ps.layout.size).fill(0.01);
      // A worker pushes a gradient computed on weights it pulled (the PS checks the claimed base version).
      const push = async (s: WorkerSession, seq: number) => {
        await ps.handle(s, encodeFrame({ type: MsgType.PULL, layoutHash: ps.layout.hash, modelVersion: 0, workerId: s.id, seq: 0, count: 0 }));
        const ack = await ps.handle(s, encodeFrame({ type: MsgType.PUSH, layoutHash: ps.layout.hash, modelVersion: ps.store.version, workerId: s.id, seq, count: 1 }, grad));
        return decodeFrame(ack, { layoutHash: ps.layout.hash, layoutSize: ps.layout.size, maxBytes: 1 << 20, maxRecordEntries: 16 }).modelVersion;
      };
      const a = ps.join('a');
      const b = ps.join('b');
      assert.equal(await push(a, 1), 1);
      storage.armed = true;
      let aAcked = false;
      let bAcked = false;
      const second = push(a, 2).then((v) => ((aAcked = true), v)); // the 2nd update: a sync checkpoint, held at the gate
      await within(storage.writing, 30_000, 'the checkpoint write to begin');
      assert.ok(ps.store.held, 'the store is held during the write');
      // Worker b's push is parked once the PS loop has found the store held (it awaits `held`
      // before each apply): count the reads of `held` that return the pending hold.
      let proto: object | null = Object.getPrototypeOf(ps.store);
      while (proto && !Object.getOwnPropertyDescriptor(proto, 'held')) proto = Object.getPrototypeOf(proto);
      const held = Object.getOwnPropertyDescriptor(proto!, 'held')!.get!;
      let onParked!: () => void;
      const parked = new Promise<void>((r) => (onParked = r));
      Object.defineProperty(ps.store, 'held', {
        configurable: true,
        get() {
          const h = held.call(this) as Promise<void> | undefined;
          if (h) onParked();
          return h;
        },
      });
      const other = push(b, 1).then((v) => ((bAcked = true), v));
      await within(parked, 30_000, 'worker b\'s update to wait for the hold');
      assert.equal(ps.store.version, 2, 'worker b\'s update waits for the checkpoint');
      assert.equal(aAcked || bAcked, false, 'neither update is acknowledged before the checkpoint is durable');
      storage.open();
      assert.equal(await within(second, 30_000, 'a\'s ack'), 2);
      assert.equal(await within(other, 30_000, 'b\'s ack'), 3);
      const status = strategy.status() as { lastCheckpoint: { storeVersion: number } };
      assert.equal(status.lastCheckpoint.storeVersion, 2);
    } finally {
      storage.open();
      await app.close();
    }
  });
});
