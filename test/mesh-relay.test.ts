/**
 * Relay while the PS is up, in real Chromium tabs: workers take signed weights from each other
 * before pulling from the PS. A frame a worker took from a peer is exactly what the PS signed
 * (the signature, over the weights digest, version and record, verifies in Node with the key
 * from /api/model), and the PS sent fewer WEIGHTS frames than there were weight updates.
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

test('a worker that took weights from a peer holds exactly the bytes the PS signed; the PS sends fewer weights', { timeout: 180_000 }, async () => {
  const ps = await startPs(['--secret', 'mesh-relay-secret-0123456789abcdef', '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0',
    '--relay', 'on', '--relay-max-lag', '30', '--mesh-peers', '2']);
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

  const text = await (await fetch(new URL('/metrics', ps.url))).text();
  const updates = metric(text, 'tabswarm_updates_applied_total');
  const weightsBytes = metric(text, 'tabswarm_weights_bytes_sent_total');
  const frames = weightsBytes / bytes.byteLength;
  console.log(`relay: ${updates} updates applied, ~${frames.toFixed(0)} WEIGHTS frames sent by the PS`);
  assert.ok(frames < updates, `the PS sent ~${frames.toFixed(0)} weights frames for ${updates} updates (one per update without relay)`);
});
