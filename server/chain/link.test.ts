import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TabswarmError } from '../../shared/errors.ts';
import { LINK_TAG_BYTES, LinkAuth, answerChallenge, freshNonce, linkUrl, predecessorProof, proofMatches, successorProof, type LinkTranscript } from './link.ts';

const SECRET = 'link-unit-secret-0123456789';
const transcript = (): LinkTranscript => ({ from: 'node-a-0000000001', to: 'node-b-0000000002', epoch: 7, predecessorNonce: freshNonce(), successorNonce: freshNonce() });

test('the URL carries names, epoch and nonce, nothing derived from the secret', () => {
  const t = transcript();
  const url = new URL(linkUrl('http://127.0.0.1:8081/', t.from, t.to, t.epoch, t.predecessorNonce));
  assert.equal(url.protocol, 'ws:');
  assert.deepEqual([...url.searchParams.keys()].sort(), ['epoch', 'from', 'nonce', 'to']);
  assert.ok(!url.toString().includes(predecessorProof(SECRET, t)) && !url.toString().includes(successorProof(SECRET, t)));
});

test('proofs are bound to role, sender, receiver, epoch and both nonces', () => {
  const t = transcript();
  const p = predecessorProof(SECRET, t);
  assert.ok(proofMatches(p, p));
  assert.notEqual(p, successorProof(SECRET, t), 'a successor proof is no predecessor proof (reflection)');
  for (const other of [{ ...t, from: 'node-x' }, { ...t, to: 'node-x' }, { ...t, epoch: 8 }, { ...t, predecessorNonce: freshNonce() }, { ...t, successorNonce: freshNonce() }]) {
    assert.ok(!proofMatches(predecessorProof(SECRET, other), p));
  }
  assert.ok(!proofMatches(predecessorProof('another-secret-0123456789', t), p));
  assert.ok(!proofMatches(p, undefined) && !proofMatches(p, 'zz') && !proofMatches(p, 42));
});

test('answerChallenge refuses a successor that does not prove the secret for this request', () => {
  const t = transcript();
  const { successorNonce, ...base } = t;
  const good = JSON.stringify({ challenge: successorNonce, proof: successorProof(SECRET, t) });
  const { reply } = answerChallenge(SECRET, base, good);
  assert.ok(proofMatches(predecessorProof(SECRET, t), JSON.parse(reply).proof));
  const refused = (text: string) => assert.throws(() => answerChallenge(SECRET, base, text), (e: unknown) => e instanceof TabswarmError && e.code === 'CHAIN_BAD_LINK');
  refused('not json');
  refused(JSON.stringify({ challenge: successorNonce }));
  refused(JSON.stringify({ challenge: successorNonce, proof: successorProof('another-secret-0123456789', t) }));
  // A challenge captured from another request (another predecessor nonce) does not verify.
  refused(JSON.stringify({ challenge: successorNonce, proof: successorProof(SECRET, { ...t, predecessorNonce: freshNonce() }) }));
});

test('every message is tagged; a forged, replayed, reordered or reflected one does not open', () => {
  const t = transcript();
  const down = new LinkAuth(SECRET, t, 'predecessor');
  const up = new LinkAuth(SECRET, t, 'successor');
  const m1 = down.seal(Uint8Array.of(1, 2, 3));
  const m2 = down.seal(Uint8Array.of(4, 5));
  assert.equal(m1.byteLength, 3 + LINK_TAG_BYTES);
  assert.equal(up.open(m2), undefined, 'out of order');
  assert.deepEqual([...up.open(m1)!], [1, 2, 3]);
  assert.equal(up.open(m1), undefined, 'replayed');
  const forged = Buffer.from(m2);
  forged[0] = forged[0]! ^ 1;
  assert.equal(up.open(forged), undefined, 'altered');
  assert.deepEqual([...up.open(m2)!], [4, 5]);
  // An ack (up) can only come from the successor: the predecessor's own message reflected back fails.
  const reflected = new LinkAuth(SECRET, t, 'predecessor').seal(Uint8Array.of(9));
  assert.equal(down.open(reflected), undefined, 'reflected');
  assert.deepEqual([...down.open(up.seal(Uint8Array.of(9)))!], [9]);
  // Another link's key (other nonces) does not open it.
  assert.equal(new LinkAuth(SECRET, transcript(), 'predecessor').open(new LinkAuth(SECRET, t, 'successor').seal(Uint8Array.of(1))), undefined);
  assert.equal(up.open(Uint8Array.of(1, 2)), undefined, 'shorter than a tag');
});
