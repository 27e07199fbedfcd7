/**
 * Relay while the PS is up, in real Chromium tabs: workers take signed weights from each other
 * before pulling from the PS. A frame a worker took from a peer is exactly what the PS signed
 * (the signature, over the weights digest, version and record, verifies in Node with the key
 * from /api/model); and over the same stretch of training the PS sent under 0.75 of the weights
 * bytes per applied update it sends in the same run with relay off (README: relay halves PS
 * weights egress, measured in docs/benchmarks.md).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Browser } from 'playwright';
import { MsgType, decodeFrame } from '../shared/protocol.ts';
import { importWeightsKey, verifyWeights } from '../shared/signing.ts';
import { launchChromium } from '../server/browsers.ts';
import { startPs, until, type PsProc } from './helpers.ts';
import { openTabs, view } from './mesh-tools.ts';

const opened: PsProc[] = [];
const browsers: Browser[] = [];
after(async () => {
  for (const b of browsers) await b.close();
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
/** Relay must cut the PS's weights bytes per applied update below this fraction of relay off. */
const MARGIN = 0.75;
const WINDOW_UPDATES = 300;
/** Measured by the first test, the baseline of the second. */
let relayOff: number | undefined;

const PS_ARGS = ['--secret', 'mesh-relay-secret-0123456789abcdef', '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--relay-max-lag', '30', '--mesh-peers', '2'];

async function counters(ps: PsProc): Promise<{ updates: number; bytes: number }> {
  const text = await (await fetch(new URL('/metrics', ps.url))).text();
  return { updates: metric(text, 'tabswarm_updates_applied_total'), bytes: metric(text, 'tabswarm_weights_bytes_sent_total') };
}

/** PS weights bytes per applied update over the next WINDOW_UPDATES updates. */
async function egressPerUpdate(ps: PsProc): Promise<number> {
  const a = await counters(ps);
  const b = await until(async () => {
    const c = await counters(ps);
    return c.updates >= a.updates + WINDOW_UPDATES ? c : undefined;
  }, `${WINDOW_UPDATES} more updates`, 90_000, 250);
  return (b.bytes - a.bytes) / (b.updates - a.updates);
}

test('relay off: the PS sends one WEIGHTS frame per applied update', { timeout: 180_000 }, async () => {
  const ps = await startPs([...PS_ARGS, '--relay', 'off']);
  opened.push(ps);
  const browser = await launchChromium();
  browsers.push(browser);
  const pages = await openTabs(browser, ps.url, 3);
  await until(async () => (await Promise.all(pages.map(view))).every((v) => (v.status?.steps ?? 0) > 10), 'three tabs training', 90_000, 250);
  relayOff = await egressPerUpdate(ps);
  const model = await ps.get<{ layout: { size: number } }>('/api/model');
  console.log(`relay off: ${relayOff.toFixed(0)} PS weights bytes per applied update (weights: ${4 * model.layout.size} bytes)`);
  assert.ok(relayOff > 4 * model.layout.size * 0.9, 'about one frame of weights per update');
  await browser.close();
  await ps.kill('SIGKILL');
});


test('a worker that took weights from a peer holds exactly the bytes the PS signed; the PS sends fewer weights', { timeout: 180_000 }, async () => {
  const ps = await startPs([...PS_ARGS, '--relay', 'on']);
  opened.push(ps);
  const model = await ps.get<{ layout: { hash: number; size: number }; weightsKey: { publicKey: string } }>('/api/model');
  const key = await importWeightsKey(model.weightsKey.publicKey);
  const browser = await launchChromium();
  browsers.push(browser);
  const pages = await openTabs(browser, ps.url, 3);
  const relayed = await until(async () => {
    for (const p of pages) {
      const v = await view(p);
      if ((v.mesh?.relayReceived ?? 0) >= 3) return p;
    }
    return undefined;
  }, 'a tab to take weights from a peer', 90_000, 250);
  const b64 = (await relayed.evaluate(() => (window as unknown as { tabswarm: { lastRelayed: () => string | undefined } }).tabswarm.lastRelayed()))!;
  const bytes = new Uint8Array(Buffer.from(b64, 'base64'));
  const frame = decodeFrame(bytes, { layoutHash: model.layout.hash, layoutSize: model.layout.size });
  assert.equal(frame.type, MsgType.WEIGHTS);
  assert.deepEqual([frame.workerId, frame.seq, frame.count, frame.flags], [0, 0, 0, 0], 'header fields outside the signature are as the PS writes them');
  assert.ok(await verifyWeights(key, frame), 'the relayed frame verifies with the PS public key');
  const v = await view(relayed);
  assert.equal(Object.keys(v.mesh!.rejected).length, 0, 'honest peers: nothing refused');

  const relayOn = await egressPerUpdate(ps);
  const received = (await Promise.all(pages.map(view))).reduce((n, t) => n + (t.mesh?.relayReceived ?? 0), 0);
  assert.ok(relayOff, 'the relay-off run measured first');
  console.log(`relay on: ${relayOn.toFixed(0)} PS weights bytes per applied update (${bytes.byteLength} a frame), ${received} frames taken from peers; relay off: ${relayOff.toFixed(0)}; ratio ${(relayOn / relayOff).toFixed(2)}`);
  assert.ok(relayOn < MARGIN * relayOff, `relay on: ${relayOn.toFixed(0)} bytes per update, not under ${MARGIN} x relay off (${relayOff.toFixed(0)})`);
});
