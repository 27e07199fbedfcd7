/**
 * Peers are untrusted. A hostile page plays a peer with the same PeerJS client and sends a
 * real worker tab wrong-size, non-finite and non-binary gossip (during an outage, when gossip
 * would be averaged in) and forged relayed weights (while the PS is up and relay is on). Each
 * is refused with its MESH_* code, counted, the peer disconnected, and the receiver's weights
 * are never touched: they stay finite, no gossip is answered but the honest control's, and
 * after the forged relay the worker computes on exactly the weights the PS signed.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Browser, Page } from 'playwright';
import WebSocket from 'ws';
import { decodeFrame } from '../shared/protocol.ts';
import { importWeightsKey, verifyWeights } from '../shared/signing.ts';
import { launchChromium } from '../server/browsers.ts';
import { startPs, until, type PsProc } from './helpers.ts';
import { openTabs, view, weightsOf } from './mesh-tools.ts';

const SECRET = 'mesh-boundary-secret-0123456789ab';
const opened: PsProc[] = [];
const browsers: Browser[] = [];
after(async () => {
  for (const b of browsers) await b.close();
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

type Attack = 'short' | 'nan' | 'text' | 'forged-relay' | 'honest-gossip';
interface MeshInfo { port: number; path: string; key: string }
interface Layout { hash: number; size: number }
interface HostileWindow { links: Record<string, { conn: import('peerjs').DataConnection; peer: import('peerjs').Peer; got: number[]; wanted: number; closed: Promise<boolean> }> }

/**
 * From the hostile page: a peer of its own (a fresh id) per attack, connected to `victim` now,
 * while signaling is up, so that the attack can be sent later, during an outage, over the open channel.
 */
function connectHostile(page: Page, victim: string, name: Attack, mesh: MeshInfo, layout: Layout) {
  return page.evaluate(async ({ victim, name, mesh, layout }) => {
    const { Peer, MeshKind, encodeMesh, MsgType, encodeFrame } = window.tabswarmMesh;
    const peer = new Peer({ host: location.hostname, port: mesh.port, path: mesh.path, key: mesh.key, config: { iceServers: [] }, debug: 0 });
    await new Promise((resolve, reject) => { peer.on('open', resolve); peer.on('error', reject); });
    const conn = peer.connect(victim, { serialization: 'binary', reliable: true });
    await new Promise((resolve, reject) => { conn.on('open', () => resolve(undefined)); conn.on('error', reject); });
    const link = { conn, peer, got: [] as number[], wanted: -1, closed: new Promise<boolean>((resolve) => conn.on('close', () => resolve(true))) };
    conn.on('data', (data) => {
      const bytes = new Uint8Array(data as ArrayBuffer);
      link.got.push(bytes[5]!);
      if (bytes[5] === MeshKind.WANT && name === 'forged-relay') {
        link.wanted = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
        // A well-formed WEIGHTS frame at the version asked for, with weights of our choosing and a made-up signature.
        const frame = encodeFrame({ type: MsgType.WEIGHTS, layoutHash: layout.hash, modelVersion: link.wanted, workerId: 0, seq: 0, count: 0 }, new Float32Array(layout.size).fill(0.25), { tag: new Uint8Array(64).fill(7), record: [] });
        conn.send(encodeMesh(MeshKind.RELAY, layout.hash, link.wanted, frame));
      }
    });
    const w = window as unknown as HostileWindow;
    w.links ??= {};
    w.links[name] = link;
    return peer.id;
  }, { victim, name, mesh, layout });
}

/** Sends the attack over the open channel; resolves with whether the victim closed it and what it answered. */
function fire(page: Page, name: Attack, layout: Layout) {
  return page.evaluate(async ({ name, layout }) => {
    const { MeshKind, encodeMesh } = window.tabswarmMesh;
    const link = (window as unknown as HostileWindow).links[name]!;
    const w = new Float32Array(layout.size).fill(0.01);
    if (name === 'short') link.conn.send(encodeMesh(MeshKind.GOSSIP_REQ, layout.hash, 0x80000001, w.subarray(0, layout.size - 1)));
    if (name === 'nan') { w[5] = NaN; link.conn.send(encodeMesh(MeshKind.GOSSIP_REQ, layout.hash, 0x80000001, w)); }
    if (name === 'text') link.conn.send('{"weights": [1, 2, 3]}');
    if (name === 'honest-gossip') link.conn.send(encodeMesh(MeshKind.GOSSIP_REQ, layout.hash, 0x80000001, w));
    if (name === 'forged-relay') link.conn.send(encodeMesh(MeshKind.HAVE, layout.hash, 1_000_000));
    const closed = await Promise.race([link.closed, new Promise<boolean>((r) => setTimeout(() => r(false), name === 'honest-gossip' ? 3000 : 8000))]);
    return { closed, got: link.got, wanted: link.wanted };
  }, { name, layout });
}

test('wrong-size, non-finite, non-binary and forged messages from a peer are refused, counted, the peer disconnected; the receiver\'s weights untouched', { timeout: 180_000 }, async () => {
  const ps = await startPs(['--strategy', 'stateless', '--secret', SECRET, '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0',
    '--buffer-mode', 'local', '--relay', 'on', '--mesh-peers', '3', '--gossip-every-ms', '0']);
  opened.push(ps);
  const mesh = await ps.get<{ port: number; path: string; key: string }>('/api/mesh');
  const model = await ps.get<{ layout: { hash: number; size: number }; weightsKey: { publicKey: string } }>('/api/model');
  const key = await importWeightsKey(model.weightsKey.publicKey);
  const browser = await launchChromium();
  browsers.push(browser);
  const victimPage = await (await browser.newContext()).newPage();
  await victimPage.goto(new URL('/?backend=cpu', ps.url).toString());
  const hostile = await (await browser.newContext()).newPage();
  await hostile.goto(new URL('/?worker=off', ps.url).toString());
  const victim = await until(async () => {
    const v = await view(victimPage);
    return v.status?.state === 'connected' && v.status.steps > 5 && v.mesh?.peerId ? v.mesh.peerId : undefined;
  }, 'the victim tab to train and get a peer id', 60_000, 200);

  const ids: Partial<Record<Attack, string>> = {};
  for (const name of ['forged-relay', 'short', 'nan', 'text', 'honest-gossip'] as const) ids[name] = await connectHostile(hostile, victim, name, mesh, model.layout);
  // Forged relay while the PS is up: the victim asks the peer that claims the newest version, refuses what it sends.
  const forged = await fire(hostile, 'forged-relay', model.layout);
  assert.ok(forged.wanted > 0, 'the victim asked the hostile peer for weights');
  assert.ok(forged.closed, 'and disconnected it after the forged relay');
  const afterRelay = await until(async () => {
    const v = await view(victimPage);
    return v.mesh!.rejected.MESH_FORGED_WEIGHTS === 1 && v.status!.steps > 0 ? v : undefined;
  }, 'the forged relay to be counted', 10_000);
  assert.deepEqual(afterRelay.mesh!.reported.map((r) => [r.peer, r.code]), [[ids['forged-relay'], 'MESH_FORGED_WEIGHTS']]);
  assert.equal(afterRelay.mesh!.relayReceived, 0);
  // What the victim holds and computes on is what the PS signed, not the forged 0.25s.
  const held = (await victimPage.evaluate(() => (window as unknown as { tabswarm: { heldFrame: () => { version: number; frame: string } } }).tabswarm.heldFrame()))!;
  const heldBytes = new Uint8Array(Buffer.from(held.frame, 'base64'));
  const heldFrame = decodeFrame(heldBytes, { layoutHash: model.layout.hash, layoutSize: model.layout.size });
  assert.ok(await verifyWeights(key, heldFrame), 'the held frame carries the PS signature');
  assert.ok(held.version < 1_000_000);
  const current = await weightsOf(victimPage);
  assert.ok(!current.every((v) => v === 0.25));

  // Gossip attacks during an outage (local mode: honest gossip would be averaged in).
  await ps.kill('SIGKILL');
  await until(async () => (await view(victimPage)).status!.state === 'buffering', 'the victim to buffer', 30_000, 100);
  for (const [kind, code] of [['short', 'MESH_BAD_LENGTH'], ['nan', 'MESH_NON_FINITE'], ['text', 'MESH_BAD_MESSAGE']] as const) {
    const r = await fire(hostile, kind, model.layout);
    assert.ok(r.closed, `${kind}: the peer was disconnected`);
    assert.ok(!r.got.includes(2), `${kind}: no gossip reply`);
    const v = await until(async () => {
      const s = await view(victimPage);
      return s.mesh!.rejected[code] === 1 ? s : undefined;
    }, `${kind} to be counted as ${code}`, 10_000);
    assert.equal(v.mesh!.reported.at(-1)!.code, code);
    assert.equal(v.mesh!.reported.at(-1)!.peer, ids[kind]);
    assert.equal(v.mesh!.gossipAnswered, 0, `${kind}: never averaged in`);
  }
  // The control: a well-formed request during the outage is answered (and would be averaged in).
  const honest = await fire(hostile, 'honest-gossip', model.layout);
  assert.ok(honest.got.includes(2), 'an honest gossip request gets the victim\'s weights back');
  assert.equal(honest.closed, false);
  const final = await view(victimPage);
  assert.equal(final.mesh!.gossipAnswered, 1);
  assert.equal(final.status!.state, 'buffering');
  assert.ok(Number.isFinite(final.status!.loss));
  const w = await weightsOf(victimPage);
  assert.ok(w.every(Number.isFinite), 'the victim\'s weights stay finite');
});

test('a peer that never answers a dial does not hold the slot: the channel is given up and the worker connects to others', { timeout: 180_000 }, async () => {
  const ps = await startPs(['--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--mesh-peers', '1']);
  opened.push(ps);
  const mesh = await ps.get<{ port: number; path: string; key: string }>('/api/mesh');
  // A peer registered with the signaling server over its own socket, which reads offers and never answers them.
  const silentId = `silent-${process.pid}`;
  const silent = new WebSocket(`ws://${new URL(ps.url).hostname}:${mesh.port}${mesh.path}/peerjs?key=${mesh.key}&id=${silentId}&token=t${process.pid}&version=1.5.5`);
  const offers: string[] = [];
  silent.addEventListener('message', (e) => {
    const m = JSON.parse(String(e.data)) as { type: string; src?: string };
    if (m.type === 'OFFER' && m.src) offers.push(m.src);
  });
  const heartbeat = setInterval(() => silent.readyState === WebSocket.OPEN && silent.send('{"type":"HEARTBEAT"}'), 5000);
  try {
    await until(() => silent.readyState === WebSocket.OPEN, 'the silent peer to register', 10_000);
    const browser = await launchChromium();
    browsers.push(browser);
    const [a] = await openTabs(browser, ps.url, 1);
    // With k = 1 and the silent peer the only other one, the tab dials it, and the dial can never open.
    const aId = await until(async () => {
      const m = (await view(a!)).mesh;
      return m?.dialing.includes(silentId) ? m.peerId : undefined;
    }, 'the tab to dial the silent peer', 60_000, 100);
    assert.ok(offers.includes(aId), 'the silent peer got the tab\'s offer');
    const stalled = await until(async () => {
      const m = (await view(a!)).mesh!;
      return m.stalled >= 1 && !m.dialing.includes(silentId) ? m : undefined;
    }, 'the unanswered dial to be given up', 30_000, 200);
    assert.ok(!stalled.peers.includes(silentId));
    // The slot is free again: a second tab and the first end up with a channel between them.
    const [b] = await openTabs(browser, ps.url, 1);
    await until(async () => {
      const [ma, mb] = [(await view(a!)).mesh!, (await view(b!)).mesh!];
      return ma.peers.includes(mb.peerId) && mb.peers.includes(ma.peerId);
    }, 'the two tabs to open a channel', 90_000, 250);
  } finally {
    clearInterval(heartbeat);
    silent.close();
  }
});
