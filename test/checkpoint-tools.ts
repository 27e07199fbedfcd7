/**
 * Tools for the cross-process checkpoint suites (test/checkpoint*.test.ts): a PS process with
 * the checkpoint strategy (and, for the kill-mid-write tests, the test-only write pause), a
 * minimal worker that pushes chosen gradients over HTTP, the admin API, and a reader for the
 * checkpoint files on disk.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { JoinResponse } from '../shared/api.ts';
import { MsgType, decodeFrame, encodeFrame } from '../shared/protocol.ts';
import { decodeCheckpoint, type DecodedCheckpoint } from '../server/strategies/checkpoint/format.ts';
import { startPs, type PsProc } from './helpers.ts';

export const ADMIN_TOKEN = 'checkpoint-tests-admin-token-0123';
export const SECRET = 'checkpoint-tests-secret-0123456789';

/** A port that was free a moment ago (the restarted PS must come back on the same URL). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** `tabswarm start` with the checkpoint strategy on mnist-logreg; `env` may set the test pause. */
export function startCheckpointPs(dir: string, port: number, args: string[], env: NodeJS.ProcessEnv = {}): Promise<PsProc> {
  return startPs([
    '--port', String(port), '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0',
    '--strategy', 'checkpoint', '--checkpoint-dir', dir, '--secret', SECRET, '--admin-token', ADMIN_TOKEN, ...args,
  ], env);
}

export async function admin<T = Record<string, unknown>>(ps: PsProc, method: 'GET' | 'POST', path: string): Promise<T> {
  const res = await fetch(new URL(path, ps.url), { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export interface CheckpointStatus {
  checkpoints: number;
  writing: { storeVersion: number } | null;
  lastCheckpoint: { storeVersion: number; files: { name: string; seq: number }[] } | null;
  restored: { version: number; shards: { shard: number; seq: number; version: number }[]; rejected: { name: string; reason: string }[]; swept: string[] } | null;
}

export async function checkpointStatus(ps: PsProc): Promise<CheckpointStatus> {
  return (await ps.get<{ strategy: CheckpointStatus }>('/api/status')).strategy;
}

/** A worker that pushes exactly the gradients a test chooses, over the HTTP transport. */
export class TestWorker {
  private constructor(readonly ps: PsProc, readonly join: JoinResponse) {}

  static async join(ps: PsProc, resume?: { workerId: number; idTag: string }): Promise<TestWorker> {
    const res = await fetch(new URL('/api/join', ps.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userAgent: 'checkpoint-test', ...(resume ? { resume } : {}) }) });
    if (!res.ok) throw new Error(`join: ${res.status} ${await res.text()}`);
    return new TestWorker(ps, (await res.json()) as JoinResponse);
  }

  private decode(bytes: Uint8Array) {
    return decodeFrame(bytes, { layoutHash: this.join.layoutHash, layoutSize: this.join.layoutSize, maxRecordEntries: 1 << 16 });
  }

  /** Pushes a gradient; resolves with the ack's version and flags. */
  async push(seq: number, grad: Float32Array, flags = 0): Promise<{ version: number; flags: number }> {
    const frame = encodeFrame({ type: MsgType.PUSH, layoutHash: this.join.layoutHash, modelVersion: 0, workerId: this.join.workerId, seq, count: 1, flags }, grad);
    const res = await fetch(new URL('/api/push', this.ps.url), { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${this.join.token}` }, body: Buffer.from(frame) });
    if (!res.ok) throw new Error(`push ${seq}: ${res.status} ${await res.text()}`);
    const ack = this.decode(new Uint8Array(await res.arrayBuffer()));
    return { version: ack.modelVersion, flags: ack.flags };
  }

  async pull(): Promise<{ version: number; weights: Float32Array }> {
    const res = await fetch(new URL('/api/weights', this.ps.url), { headers: { authorization: `Bearer ${this.join.token}` } });
    if (!res.ok) throw new Error(`pull: ${res.status} ${await res.text()}`);
    const f = this.decode(new Uint8Array(await res.arrayBuffer()));
    return { version: f.modelVersion, weights: Float32Array.from(f.payload) };
  }
}

/** A gradient that differs per seq, so every update moves the weights differently. */
export function testGradient(size: number, seq: number): Float32Array {
  return Float32Array.from({ length: size }, (_, i) => Math.sin(seq * 1.3 + i * 0.01) * 0.5);
}

export async function readCheckpoint(dir: string, name: string): Promise<DecodedCheckpoint> {
  const b = await readFile(join(dir, name));
  return decodeCheckpoint(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), name);
}

export const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
