import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TabswarmError, type ErrorCode } from './errors.ts';
import { MESH_HEADER_BYTES, MeshKind, asBytes, decodeMesh, encodeMesh } from './mesh.ts';
import { MsgType, TAG_BYTES, encodeFrame } from './protocol.ts';

const OPTS = { layoutHash: 0xabcdef01, layoutSize: 10, peer: 'p1' };
const W = new Float32Array(10).map((_, i) => i - 4.5);
const rejects = (f: () => unknown, code: ErrorCode) => assert.throws(f, (e: unknown) => e instanceof TabswarmError && e.code === code, code);
const weightsFrame = (version: number, w = W) => encodeFrame({ type: MsgType.WEIGHTS, layoutHash: OPTS.layoutHash, modelVersion: version, workerId: 0, seq: 0, count: 0 }, w, { tag: new Uint8Array(TAG_BYTES).fill(9), record: [] });

describe('mesh messages', () => {
  test('round trips: gossip weights bitwise, HAVE/WANT/NONE refs, a relayed frame whole', () => {
    const g = decodeMesh(encodeMesh(MeshKind.GOSSIP_REQ, OPTS.layoutHash, 77, W), OPTS);
    assert.equal(g.kind, MeshKind.GOSSIP_REQ);
    assert.equal(g.ref, 77);
    assert.deepEqual([...(g as { weights: Float32Array }).weights], [...W]);
    for (const kind of [MeshKind.HAVE, MeshKind.WANT, MeshKind.NONE] as const) assert.deepEqual(decodeMesh(encodeMesh(kind, OPTS.layoutHash, 5), OPTS), { kind, ref: 5 });
    const frame = weightsFrame(12);
    const r = decodeMesh(encodeMesh(MeshKind.RELAY, OPTS.layoutHash, 12, frame), OPTS);
    assert.equal(r.kind, MeshKind.RELAY);
    assert.deepEqual(Buffer.from((r as { bytes: Uint8Array }).bytes), Buffer.from(frame));
  });

  test('an unaligned gossip body decodes to the same values', () => {
    const msg = encodeMesh(MeshKind.GOSSIP_REPLY, OPTS.layoutHash, 1, W);
    const shifted = new Uint8Array(msg.byteLength + 1);
    shifted.set(msg, 1);
    assert.deepEqual([...(decodeMesh(shifted.subarray(1), OPTS) as { weights: Float32Array }).weights], [...W]);
  });

  test('wrong size, non-finite, foreign layout, not binary, garbage: each with its code', () => {
    rejects(() => decodeMesh(encodeMesh(MeshKind.GOSSIP_REQ, OPTS.layoutHash, 1, W.subarray(0, 9)), OPTS), 'MESH_BAD_LENGTH');
    rejects(() => decodeMesh(encodeMesh(MeshKind.GOSSIP_REQ, OPTS.layoutHash, 1, new Float32Array(11)), OPTS), 'MESH_BAD_LENGTH');
    rejects(() => decodeMesh(encodeMesh(MeshKind.HAVE, OPTS.layoutHash, 1, new Uint8Array(4)), OPTS), 'MESH_BAD_LENGTH');
    for (const v of [NaN, Infinity, -Infinity]) {
      const w = Float32Array.from(W);
      w[3] = v;
      rejects(() => decodeMesh(encodeMesh(MeshKind.GOSSIP_REPLY, OPTS.layoutHash, 1, w), OPTS), 'MESH_NON_FINITE');
      rejects(() => decodeMesh(encodeMesh(MeshKind.RELAY, OPTS.layoutHash, 3, weightsFrame(3, w)), OPTS), 'MESH_NON_FINITE');
    }
    rejects(() => decodeMesh(encodeMesh(MeshKind.GOSSIP_REQ, 1234, 1, W), OPTS), 'MESH_LAYOUT_MISMATCH');
    rejects(() => decodeMesh(new Uint8Array(5), OPTS), 'MESH_BAD_MESSAGE');
    rejects(() => decodeMesh(new Uint8Array(MESH_HEADER_BYTES + 40), OPTS), 'MESH_BAD_MESSAGE');
    const unknown = encodeMesh(MeshKind.HAVE, OPTS.layoutHash, 1);
    unknown[5] = 99;
    rejects(() => decodeMesh(unknown, OPTS), 'MESH_BAD_MESSAGE');
    rejects(() => asBytes('{"weights":[1,2]}', 'p1'), 'MESH_BAD_MESSAGE');
    rejects(() => asBytes({ weights: [1] }, 'p1'), 'MESH_BAD_MESSAGE');
    assert.equal(asBytes(new ArrayBuffer(3), 'p1').byteLength, 3);
  });

  test('a relayed frame must be a whole WEIGHTS frame at the version the message names', () => {
    const frame = weightsFrame(12);
    rejects(() => decodeMesh(encodeMesh(MeshKind.RELAY, OPTS.layoutHash, 13, frame), OPTS), 'MESH_BAD_MESSAGE');
    rejects(() => decodeMesh(encodeMesh(MeshKind.RELAY, OPTS.layoutHash, 12, frame.subarray(0, frame.byteLength - 4)), OPTS), 'MESH_BAD_LENGTH');
    const push = encodeFrame({ type: MsgType.PUSH, layoutHash: OPTS.layoutHash, modelVersion: 12, workerId: 1, seq: 1, count: 1 }, W);
    rejects(() => decodeMesh(encodeMesh(MeshKind.RELAY, OPTS.layoutHash, 12, push), OPTS), 'MESH_BAD_MESSAGE');
  });
});
