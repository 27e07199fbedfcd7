/**
 * Authenticated chain links (issue 13; server/chain/link.ts): real ZooKeeper, a head and a tail
 * (`tabswarm node`, sync mode) and a Node worker training through them.
 *
 * - A handshake captured from a valid link (its URL with the predecessor's nonce, and the
 *   predecessor's answer) and replayed is refused with CHAIN_BAD_LINK: the successor's nonce
 *   is new. A fake successor replaying the real one's captured challenge is refused by the
 *   predecessor (CHAIN_BAD_LINK); one that relays a real handshake and then sends its own ack
 *   is refused with CHAIN_BAD_MAC, and the forged ack never reaches the replica.
 * - The real chain is unaffected: same epoch, training goes on, every acknowledged push is
 *   applied exactly once on both replicas, which are bitwise identical. No proof appears in
 *   a node's output.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { encodeAck } from '../server/chain/frames.ts';
import { OutLink } from '../server/chain/link.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { SECRET, assertReplicasAgree, byUrl, headVersion, nodeWorkerAcks, quiet, settled, startNode, type NodeProc } from './chain-tools.ts';
import { spawnCli, until, type Proc } from './helpers.ts';
import { dialLink } from './link-tools.ts';

const NODE_ARGS = ['--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync'];
const CLUSTER = 'chain-links';

let zk: ZooKeeperCluster;
const nodes: NodeProc[] = [];
let worker: Proc;
const servers: WebSocketServer[] = [];

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
  for (let i = 0; i < 2; i++) nodes.push(await startNode(zk.connectionString, CLUSTER, NODE_ARGS));
  worker = spawnCli(['worker', '--url', nodes[0]!.url, '--log-acks']);
});

after(async () => {
  for (const s of servers) s.close();
  await worker?.kill('SIGKILL');
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
});

/** A WebSocket server on a free port: a fake successor. */
async function fakeSuccessor(onConnection: (socket: WebSocket, url: string) => void): Promise<string> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  servers.push(server);
  await new Promise<void>((r) => server.once('listening', () => r()));
  server.on('connection', (socket, request) => onConnection(socket, request.url ?? ''));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
}

/** A real OutLink (a predecessor's end) to `url`: what it reported before it closed. */
function predecessorTo(url: string, target: string, epoch: number, from: string): Promise<{ code: number; reason: string; hellos: number; frames: number }> {
  return new Promise((resolve) => {
    let hellos = 0;
    let frames = 0;
    const timer = setTimeout(() => link.close(), 15000);
    const link: OutLink = new OutLink({ name: target, url }, epoch, from, SECRET, 1 << 20, {
      onHello: () => hellos++,
      onFrame: () => frames++,
      onClose: (code, reason) => {
        clearTimeout(timer);
        resolve({ code, reason, hellos, frames });
      },
    });
  });
}

test('a replayed handshake and a fake successor\'s acks are refused; the real chain is unaffected', { timeout: 120000 }, async () => {
  const chain = await settled(nodes, 2);
  const head = chain.nodes[0]!;
  const tail = chain.nodes[1]!;
  const tailNode = byUrl(nodes, tail.url);
  await until(async () => (await headVersion(nodes)) >= 10, 'training to start', 60000, 100);

  // Capture: a valid handshake for the head's name at this epoch (what a sniffer sees: the
  // URL with its nonce, the tail's challenge and the head's answer). It replaces the head's
  // link for a moment; the head links again by itself.
  const captured = await dialLink(tail.url, { from: head.name, to: tail.name, epoch: chain.epoch, secret: SECRET });
  assert.ok(captured.ok, 'the captured handshake was valid');
  captured.socket.close();
  let challenge = '';

  // Replay it: the same URL (nonce) and the same answer, on a new connection.
  const replayed = await dialLink(tail.url, {
    from: head.name, to: tail.name, epoch: chain.epoch, secret: 'unknown-to-the-attacker', nonce: captured.transcript.predecessorNonce,
    reply: (t) => {
      challenge = JSON.stringify({ challenge: t.successorNonce });
      assert.notEqual(t.successorNonce, captured.transcript.successorNonce, 'a fresh challenge');
      return captured.reply;
    },
  });
  assert.ok(!replayed.ok);
  assert.equal(replayed.code, 4490, replayed.reason);
  assert.match(replayed.reason, /^CHAIN_BAD_LINK: .*proof does not verify/);
  assert.ok(challenge);

  // A fake successor (no secret) that replays the real tail's captured challenge and proof.
  const capturedChallenge = await new Promise<string>((resolve, reject) => {
    // Ask the tail for a challenge as the head would (it is not answered: refused after 5 s or on close).
    const ws = new WebSocket(`${tail.url.replace('http', 'ws')}chain?from=${head.name}&to=${tail.name}&epoch=${chain.epoch}&nonce=${captured.transcript.predecessorNonce}`);
    ws.on('error', reject);
    ws.once('message', (d) => {
      resolve(d.toString());
      ws.terminate();
    });
  });
  const replayer = await fakeSuccessor((socket) => socket.send(capturedChallenge));
  const byReplayer = await predecessorTo(replayer, tail.name, chain.epoch, head.name);
  assert.equal(byReplayer.code, 4490, byReplayer.reason);
  assert.match(byReplayer.reason, /^CHAIN_BAD_LINK: .*the successor did not prove/);
  assert.equal(byReplayer.hellos + byReplayer.frames, 0);

  // A fake successor in the middle: it relays a real handshake with the tail, then sends an
  // ack of its own (a version the tail never applied), tagged without the link's key.
  let forgedSent = false;
  const relay = await fakeSuccessor((socket, path) => {
    const upstream = new WebSocket(new URL(path, tail.url.replace('http', 'ws')).toString());
    upstream.on('error', () => socket.terminate());
    upstream.on('message', (data: Buffer, isBinary: boolean) => {
      socket.send(data, { binary: isBinary });
      if (!isBinary) return;
      // The tail's hello went through: now the forged ack.
      const ack = encodeAck(0, chain.epoch, 1_000_000);
      socket.send(Buffer.concat([ack, Buffer.alloc(32, 7)]));
      forgedSent = true;
      upstream.close();
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => upstream.readyState === WebSocket.OPEN && upstream.send(data, { binary: isBinary }));
  });
  const byRelay = await predecessorTo(relay, tail.name, chain.epoch, head.name);
  assert.ok(forgedSent, 'the relay got through the handshake and sent its ack');
  assert.equal(byRelay.hellos, 1, 'the relayed hello verified (the tail sent it)');
  assert.equal(byRelay.frames, 0, 'the forged ack never reached the replica');
  assert.equal(byRelay.code, 4493, byRelay.reason);
  assert.match(byRelay.reason, /^CHAIN_BAD_MAC: /);

  // The real chain: same configuration, training goes on through both nodes.
  const v0 = await headVersion(nodes);
  const now = await settled(nodes, 2);
  assert.equal(now.epoch, chain.epoch, 'no reconfiguration');
  await until(async () => (await headVersion(nodes)) >= v0 + 20, 'training to go on', 60000, 100);
  await worker.kill('SIGTERM');
  const histories = await quiet(nodes);
  assertReplicasAgree(histories, nodeWorkerAcks(worker));
  assert.ok(histories[0]!.version < 1_000_000);

  // Nothing derived from the secret in a URL or a log line.
  const proofs = [JSON.parse(captured.reply).proof as string, JSON.parse(capturedChallenge).proof as string];
  for (const n of nodes) {
    for (const proof of proofs) assert.ok(!n.output().includes(proof), 'a proof in a node\'s output');
    assert.doesNotMatch(n.output(), /proof=/);
  }
  assert.ok(tailNode.alive());
});
