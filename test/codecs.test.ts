/**
 * Push codecs against a real PS process (docs/PROTOCOL.md 1.9): the PS lists what it accepts, a
 * coded push is applied as exactly the step its decoded values call for, a malformed or refused
 * one changes nothing, and a Node worker that asks for a codec the PS does not take trains on
 * float32 and says so; one that asks for an accepted lossy codec trains with it, sending fewer
 * bytes per push.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { JoinResponse, ModelInfo } from '../shared/api.ts';
import { CODECS, Codec } from '../shared/codec/index.ts';
import { HEADER_BYTES, MsgType, decodeFrame, encodeCodedPush } from '../shared/protocol.ts';
import { launchWorkerTabs, type WorkerTabs } from '../server/browsers.ts';
import { spawnCli, startPs, until, workerLines, type Proc, type PsProc } from './helpers.ts';

let ps: PsProc;
const procs: Proc[] = [];
let tabs: WorkerTabs | undefined;
before(async () => {
  // Only f16 and int8 besides float32: topk is refused here. Plain SGD (no clipping), so the
  // step a push causes is exactly -lr times its decoded values.
  ps = await startPs(['--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--codecs', 'f16,int8', '--aggregator', 'none', '--lr', '0.5']);
});
after(async () => {
  await tabs?.close();
  for (const p of procs) await p.kill('SIGKILL');
  await ps?.kill('SIGKILL');
});

async function join(): Promise<JoinResponse> {
  const res = await fetch(new URL('/api/join', ps.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(res.status, 200);
  return (await res.json()) as JoinResponse;
}

async function weights(j: JoinResponse): Promise<{ version: number; values: Float32Array }> {
  const res = await fetch(new URL('/api/weights', ps.url), { headers: { authorization: `Bearer ${j.token}` } });
  const frame = decodeFrame(new Uint8Array(await res.arrayBuffer()), { layoutHash: j.layoutHash, layoutSize: j.layoutSize });
  return { version: frame.modelVersion, values: Float32Array.from(frame.payload) };
}

async function push(j: JoinResponse, bytes: Uint8Array): Promise<{ status: number; body: Uint8Array }> {
  const res = await fetch(new URL('/api/push', ps.url), { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${j.token}` }, body: Buffer.from(bytes) });
  return { status: res.status, body: new Uint8Array(await res.arrayBuffer()) };
}

test('the PS lists the codecs it accepts, applies a coded push exactly, and refuses a bad or unaccepted one with nothing applied', async () => {
  const j = await join();
  assert.deepEqual(j.codecs, ['float32', 'f16', 'int8']);
  assert.deepEqual((await ps.get<ModelInfo>('/api/model')).codecs, ['float32', 'f16', 'int8']);

  const grad = new Float32Array(j.layoutSize);
  for (let i = 0; i < grad.length; i++) grad[i] = ((i % 17) - 8) * 1e-3;
  const header = (seq: number) => ({ type: MsgType.PUSH, layoutHash: j.layoutHash, modelVersion: 0, workerId: j.workerId, seq, count: 1 }) as const;

  const before = await weights(j);
  const payload = CODECS.int8.encode(grad, { blockSize: 64 });
  const ok = await push(j, encodeCodedPush(header(1), { dtype: Codec.int8, bytes: payload, values: j.layoutSize }));
  assert.equal(ok.status, 200);
  assert.equal(decodeFrame(ok.body, { layoutHash: j.layoutHash, layoutSize: 0 }).type, MsgType.ACK);
  const afterOk = await weights(j);
  assert.equal(afterOk.version, before.version + 1);
  const decoded = CODECS.int8.decode(payload, j.layoutSize);
  for (const i of [0, 1, 100, j.layoutSize - 1]) assert.equal(afterOk.values[i], Math.fround(before.values[i]! - 0.5 * decoded[i]!), `weight ${i} moved by -lr x the decoded value`);

  // Malformed (a truncated int8 payload) and unaccepted (topk) pushes: refused, nothing applied.
  const bad = await push(j, encodeCodedPush(header(2), { dtype: Codec.int8, bytes: payload.subarray(0, payload.length - 3), values: j.layoutSize }));
  assert.equal(bad.status, 400);
  assert.equal((JSON.parse(new TextDecoder().decode(bad.body)) as { code: string }).code, 'PROTO_BAD_CODEC');
  const refused = await push(j, encodeCodedPush(header(2), { dtype: Codec.topk, bytes: CODECS.topk.encode(grad), values: j.layoutSize }));
  assert.equal(refused.status, 400);
  const body = JSON.parse(new TextDecoder().decode(refused.body)) as { code: string; message: string };
  assert.equal(body.code, 'PROTO_BAD_DTYPE');
  assert.match(body.message, /float32, f16, int8/);
  assert.equal((await weights(j)).version, afterOk.version, 'nothing applied');
});

test('Node workers: an accepted lossy codec trains with fewer bytes per push; an unaccepted one falls back to float32 and says so', { timeout: 120_000 }, async () => {
  const f16 = spawnCli(['worker', '--url', ps.url, '--seed', '1', '--log-every-ms', '200', '--codec', 'f16']);
  const topk = spawnCli(['worker', '--url', ps.url, '--seed', '2', '--log-every-ms', '200', '--codec', 'topk']);
  procs.push(f16, topk);
  const progressed = (p: Proc) => until(() => workerLines(p).filter((l) => Number(l.steps) >= 20 && Number(l.pushBytes) > 0).at(-1), 'the worker to push 20 times', 90_000, 200);
  const [a, b] = await Promise.all([progressed(f16), progressed(topk)]);
  assert.equal(a.codec, 'f16');
  assert.equal(b.codec, 'float32 (this PS does not accept topk)');
  const layoutSize = (await ps.get<ModelInfo>('/api/model')).layout.size;
  // Bytes per push: the header plus 2 bytes a value for f16, 4 for float32 (pushes = steps here).
  const perPush = (l: Record<string, unknown>) => Number(l.pushBytes) / Number(l.steps);
  assert.ok(Math.abs(perPush(a) - (HEADER_BYTES + 2 * layoutSize)) <= 4 * layoutSize * 0.05, `f16: ${perPush(a)} bytes a push`);
  assert.ok(Math.abs(perPush(b) - (HEADER_BYTES + 4 * layoutSize)) <= 4 * layoutSize * 0.05, `float32: ${perPush(b)} bytes a push`);
  const status = await ps.get<{ workers: { id: number; pushes: number }[] }>('/api/status');
  assert.ok(status.workers.filter((w) => w.pushes >= 20).length >= 2, 'the PS applied both workers\' pushes');
});

test('a tab with ?codec=int8&overlap=1 trains with it, and its page says what it uploads', { timeout: 120_000 }, async () => {
  tabs = await launchWorkerTabs({ url: `${ps.url}?codec=int8&overlap=1`, count: 1, backend: 'webgl' });
  const page = tabs.pages[0]!;
  const status = () => page.evaluate(() => (window as unknown as { tabswarm: { status?: { steps: number; codec?: string; pushBytes?: number } } }).tabswarm.status);
  const s = await until(async () => {
    const st = await status();
    return st && st.steps >= 20 && (st.pushBytes ?? 0) > 0 ? st : undefined;
  }, 'the tab to take 20 steps', 90_000, 250);
  assert.equal(s.codec, 'int8');
  const layoutSize = (await ps.get<ModelInfo>('/api/model')).layout.size;
  // int8 with blocks of 256: a header, the block size, a scale per block and a byte per value.
  const perPush = HEADER_BYTES + 4 + 4 * Math.ceil(layoutSize / 256) + layoutSize;
  assert.ok(s.pushBytes! <= perPush * s.steps, `at most one int8 push a step: ${s.pushBytes} bytes for ${s.steps} steps`);
  assert.ok(s.pushBytes! >= perPush * (s.steps - 2), `a push for every step but the ones in flight: ${s.pushBytes} bytes for ${s.steps} steps`);
  assert.match(await page.locator('#upload').textContent() ?? '', /^int8, overlapped with compute; \d+\.\d MB sent$/);
});
