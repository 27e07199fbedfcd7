import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MsgType, decodeFrame, encodeFrame, TAG_BYTES } from '../../shared/protocol.ts';
import { importWeightsKey, verifyWeights } from '../../shared/signing.ts';
import { Signer } from './signer.ts';

const record = [{ workerId: 3, seq: 7, version: 11 }];
function signedFrame(signer: Signer, weights: Float32Array, version = 5): Uint8Array {
  const bytes = encodeFrame({ type: MsgType.WEIGHTS, layoutHash: 42, modelVersion: version, workerId: 0, seq: 0, count: 0 }, weights, { tag: new Uint8Array(TAG_BYTES), record });
  bytes.set(signer.weightsTag(42, version, record, bytes.subarray(bytes.byteLength - 4 * weights.length)), 36);
  return bytes;
}

test('the signing key is a function of the secret: two PS processes of a deployment sign alike', () => {
  const a = new Signer('one-secret-0123456789abcdef');
  const b = new Signer('one-secret-0123456789abcdef');
  const c = new Signer('another-secret-0123456789abc');
  assert.equal(a.publicKey, b.publicKey);
  assert.notEqual(a.publicKey, c.publicKey);
  assert.notEqual(new Signer().publicKey, new Signer().publicKey, 'random without a secret');
  const w = new Uint8Array(new Float32Array([1, 2, 3]).buffer);
  const tag = a.weightsTag(42, 5, record, w);
  assert.equal(tag.length, 64);
  assert.ok(b.verifyWeightsTag(tag, 42, 5, record, w));
  assert.ok(!c.verifyWeightsTag(tag, 42, 5, record, w));
  assert.ok(!b.verifyWeightsTag(tag, 42, 6, record, w), 'version is covered');
  assert.ok(!b.verifyWeightsTag(tag, 42, 5, [{ workerId: 3, seq: 8, version: 11 }], w), 'record is covered');
});

test('WebCrypto verifies what the PS signed with its public key, and nothing altered', async () => {
  const signer = new Signer('one-secret-0123456789abcdef');
  const key = await importWeightsKey(signer.publicKey);
  const weights = new Float32Array(100).map((_, i) => i / 7);
  const bytes = signedFrame(signer, weights);
  const opts = { layoutHash: 42, layoutSize: 100 };
  assert.ok(await verifyWeights(key, decodeFrame(bytes, opts)));
  const altered = bytes.slice();
  new DataView(altered.buffer).setFloat32(altered.byteLength - 8, 9, true);
  assert.ok(!(await verifyWeights(key, decodeFrame(altered, opts))));
  const foreign = signedFrame(new Signer('another-secret-0123456789abc'), weights);
  assert.ok(!(await verifyWeights(key, decodeFrame(foreign, opts))));
});
