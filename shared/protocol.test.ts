import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TabswarmError, type ErrorCode } from './errors.ts';
import {
  Flag,
  HEADER_BYTES,
  MAGIC,
  MsgType,
  PROTOCOL_VERSION,
  TAG_BYTES,
  decodeFrame,
  encodeFrame,
  firstNonFinite,
  retypeFrame,
  typeName,
  writeHeader,
  type DecodeOptions,
  type FrameHeader,
  type WeightsMeta,
} from './protocol.ts';

// A hash with the top bit set, to catch signed/unsigned mix-ups.
const HASH = 0xdeadbeef;
const SIZE = 6;
const OPTS: DecodeOptions = { layoutHash: HASH, layoutSize: SIZE };

/** Values whose bit patterns are easy to lose: -0, subnormals, extremes. */
const TRICKY = new Float32Array([-0, 1.401298464324817e-45, -3.4028234663852886e38, 3.4028234663852886e38, 0.1, -1.1754943508222875e-38]);

function header(type: MsgType, over: Partial<FrameHeader> = {}): FrameHeader {
  return { type, layoutHash: HASH, modelVersion: 0xfffffffe, workerId: 0x80000001, seq: 0xffffffff, count: 3, ...over };
}

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

/** Asserts that `fn` throws a TabswarmError with `code`; returns it for further checks. */
function rejects(fn: () => unknown, code: ErrorCode): TabswarmError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TabswarmError, `expected a TabswarmError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

const META: WeightsMeta = { tag: new Uint8Array(TAG_BYTES).map((_, i) => i * 7), record: [{ workerId: 1, seq: 2, version: 3 }, { workerId: 0xffffffff, seq: 9, version: 10 }] };

/** encodeFrame, adding a meta block for the types that need one. */
function enc(h: FrameHeader, payload?: Float32Array): Uint8Array {
  return encodeFrame(h, payload, h.type === MsgType.WEIGHTS || h.type === MsgType.OFFER ? META : undefined);
}

function pushFrame(payload: Float32Array = TRICKY, over: Partial<FrameHeader> = {}): Uint8Array {
  return encodeFrame(header(MsgType.PUSH, over), payload);
}

describe('encodeFrame / decodeFrame round trips', () => {
  test('PULL: no payload, every header field survives', () => {
    const h = header(MsgType.PULL, { count: 0 });
    const bytes = encodeFrame(h);
    assert.equal(bytes.byteLength, HEADER_BYTES);
    const f = decodeFrame(bytes, OPTS);
    const { payload: _p, payloadBytes: _b, normSq, ...fields } = f;
    assert.deepEqual(fields, { ...h, flags: 0 });
    assert.equal(f.payload.length, 0);
    assert.equal(normSq, 0);
  });

  test('PUSH: header fields and payload bitwise equal', () => {
    const h = header(MsgType.PUSH);
    const bytes = encodeFrame(h, TRICKY);
    assert.equal(bytes.byteLength, HEADER_BYTES + 4 * SIZE);
    const f = decodeFrame(bytes, OPTS);
    assert.equal(f.type, MsgType.PUSH);
    assert.equal(f.layoutHash, HASH);
    assert.equal(f.modelVersion, 0xfffffffe);
    assert.equal(f.workerId, 0x80000001);
    assert.equal(f.seq, 0xffffffff);
    assert.equal(f.count, 3);
    assert.deepEqual(bits(f.payload), bits(TRICKY));
    assert.ok(Object.is(f.payload[0], -0), '-0 keeps its sign');
    let sq = 0;
    for (const v of TRICKY) sq += v * v;
    assert.equal(f.normSq, sq, 'the scan hands on the squared norm, summed in index order');
  });

  test('WEIGHTS: payload bitwise equal, count 0 is fine', () => {
    const weights = new Float32Array(SIZE).map((_, i) => Math.fround(Math.sin(i + 1) * 1e3));
    const h = header(MsgType.WEIGHTS, { count: 0, workerId: 0, seq: 0, modelVersion: 42 });
    const f = decodeFrame(enc(h, weights), OPTS);
    assert.equal(f.type, MsgType.WEIGHTS);
    assert.deepEqual(f.meta, META, 'tag and record survive');
    assert.deepEqual([...f.payloadBytes], [...new Uint8Array(weights.buffer)], 'payloadBytes are the payload');
    assert.equal(f.modelVersion, 42);
    assert.equal(f.count, 0);
    assert.deepEqual(bits(f.payload), bits(weights));
  });

  test('ACK: no payload, seq/version/count echoed', () => {
    const h = header(MsgType.ACK, { seq: 17, modelVersion: 99, count: 4 });
    const f = decodeFrame(encodeFrame(h), OPTS);
    assert.equal(f.type, MsgType.ACK);
    assert.equal(f.seq, 17);
    assert.equal(f.modelVersion, 99);
    assert.equal(f.count, 4);
    assert.equal(f.payload.length, 0);
  });

  test('the byte layout matches the documented grammar (little-endian, fixed offsets)', () => {
    const bytes = encodeFrame({ type: MsgType.PUSH, layoutHash: 0x04030201, modelVersion: 0x0a, workerId: 0x0b, seq: 0x0c, count: 0x0d }, new Float32Array([1, 0, 0, 0, 0, -2]));
    assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), 'TSWM');
    const view = new DataView(bytes.buffer);
    assert.equal(view.getUint32(0, true), MAGIC);
    assert.equal(bytes[4], PROTOCOL_VERSION);
    assert.equal(bytes[5], 0x02);
    assert.equal(bytes[6], 0); // float32
    assert.equal(bytes[7], 0); // flags
    assert.deepEqual([...bytes.subarray(8, 12)], [1, 2, 3, 4]);
    assert.equal(view.getUint32(12, true), 0x0a);
    assert.equal(view.getUint32(16, true), 0x0b);
    assert.equal(view.getUint32(20, true), 0x0c);
    assert.equal(view.getUint32(24, true), 0x0d);
    assert.equal(view.getUint32(28, true), SIZE);
    // float32 1.0 is 0x3f800000, little-endian first.
    assert.deepEqual([...bytes.subarray(32, 36)], [0x00, 0x00, 0x80, 0x3f]);
    assert.equal(view.getFloat32(32 + 4 * 5, true), -2);
  });

  test('unaligned input (byteOffset 1 of a bigger buffer) decodes into a copy', () => {
    const frame = pushFrame();
    const big = new Uint8Array(frame.byteLength + 7);
    big.set(frame, 1);
    const unaligned = big.subarray(1, 1 + frame.byteLength);
    assert.equal(unaligned.byteOffset % 4, 1);
    const f = decodeFrame(unaligned, OPTS);
    assert.deepEqual(bits(f.payload), bits(TRICKY));
    assert.equal(f.seq, 0xffffffff);
    assert.notEqual(f.payload.buffer, big.buffer, 'an unaligned payload must be copied');
    big.fill(0xff);
    assert.deepEqual(bits(f.payload), bits(TRICKY), 'the copy does not follow later writes to the input');
  });

  test('aligned input at a nonzero offset decodes into a view of the input', () => {
    const frame = pushFrame();
    const big = new Uint8Array(frame.byteLength + 8);
    big.set(frame, 4);
    const f = decodeFrame(big.subarray(4, 4 + frame.byteLength), OPTS);
    assert.deepEqual(bits(f.payload), bits(TRICKY));
    assert.equal(f.payload.buffer, big.buffer);
    assert.equal(f.payload.byteOffset, 4 + HEADER_BYTES);
  });

  test('writeHeader fills a header inside a larger buffer at an offset', () => {
    const big = new Uint8Array(8 + HEADER_BYTES + 4 * SIZE);
    const frame = big.subarray(8);
    new Float32Array(big.buffer, 8 + HEADER_BYTES, SIZE).set(TRICKY);
    writeHeader(frame, header(MsgType.PUSH, { seq: 5 }), SIZE);
    assert.deepEqual([...big.subarray(0, 8)], [0, 0, 0, 0, 0, 0, 0, 0], 'bytes before the frame untouched');
    const f = decodeFrame(frame, OPTS);
    assert.equal(f.seq, 5);
    assert.deepEqual(bits(f.payload), bits(TRICKY));
  });

  test('typeName names known types and prints unknown ones in hex', () => {
    assert.equal(typeName(MsgType.PULL), 'PULL');
    assert.equal(typeName(MsgType.PUSH), 'PUSH');
    assert.equal(typeName(MsgType.WEIGHTS), 'WEIGHTS');
    assert.equal(typeName(MsgType.ACK), 'ACK');
    assert.equal(typeName(0x3f), '0x3f');
  });
});

describe('decodeFrame rejections', () => {
  test('PROTO_TOO_SHORT: fewer bytes than the header', () => {
    for (const n of [0, 1, 4, HEADER_BYTES - 1]) {
      const e = rejects(() => decodeFrame(encodeFrame(header(MsgType.PULL)).subarray(0, n), OPTS), 'PROTO_TOO_SHORT');
      assert.equal(e.details.bytes, n);
    }
  });

  test('PROTO_BAD_MAGIC', () => {
    const bytes = encodeFrame(header(MsgType.PULL));
    bytes[0] = 0x55;
    const e = rejects(() => decodeFrame(bytes, OPTS), 'PROTO_BAD_MAGIC');
    assert.equal(e.details.want, MAGIC.toString(16));
    // Big-endian magic is not accepted either.
    const be = encodeFrame(header(MsgType.PULL));
    new DataView(be.buffer).setUint32(0, MAGIC, false);
    rejects(() => decodeFrame(be, OPTS), 'PROTO_BAD_MAGIC');
  });

  test('PROTO_BAD_VERSION', () => {
    for (const v of [0, PROTOCOL_VERSION + 1, 255]) {
      const bytes = encodeFrame(header(MsgType.PULL));
      bytes[4] = v;
      const e = rejects(() => decodeFrame(bytes, OPTS), 'PROTO_BAD_VERSION');
      assert.equal(e.details.got, v);
    }
  });

  test('PROTO_UNKNOWN_TYPE, including the reserved PS -> PS range', () => {
    for (const t of [0x00, 0x04, 0x1f, 0x20, 0x23, 0x40, 0x5f, 0xff]) {
      const bytes = encodeFrame(header(MsgType.PULL));
      bytes[5] = t;
      const e = rejects(() => decodeFrame(bytes, OPTS), 'PROTO_UNKNOWN_TYPE');
      assert.equal(e.details.type, t.toString(16).padStart(2, '0'));
    }
  });

  test('PROTO_BAD_DTYPE', () => {
    const bytes = pushFrame();
    bytes[6] = 9; // no such codec
    const e = rejects(() => decodeFrame(bytes, OPTS), 'PROTO_BAD_DTYPE');
    assert.equal(e.details.dtype, 9);
    bytes[6] = 1; // f16, which this PS does not accept
    assert.equal(rejects(() => decodeFrame(bytes, { ...OPTS, codecs: [] }), 'PROTO_BAD_DTYPE').details.accepted, 'float32');
  });

  test('PROTO_LAYOUT_MISMATCH', () => {
    const bytes = pushFrame(TRICKY, { layoutHash: HASH ^ 1 });
    const e = rejects(() => decodeFrame(bytes, OPTS), 'PROTO_LAYOUT_MISMATCH');
    assert.equal(e.details.got, (HASH ^ 1) >>> 0);
    assert.equal(e.details.want, HASH);
  });

  test('PROTO_BAD_LENGTH: header payloadLength wrong for the type', () => {
    // A PULL/ACK carrying a payload (header and bytes consistent with each other).
    for (const type of [MsgType.PULL, MsgType.ACK]) {
      const e = rejects(() => decodeFrame(encodeFrame(header(type), new Float32Array(2)), OPTS), 'PROTO_BAD_LENGTH');
      assert.equal(e.details.got, 2);
      assert.equal(e.details.want, 0);
    }
    // A PUSH/WEIGHTS with fewer values than the layout.
    for (const type of [MsgType.PUSH, MsgType.WEIGHTS]) {
      const e = rejects(() => decodeFrame(enc(header(type), new Float32Array(SIZE - 1)), OPTS), 'PROTO_BAD_LENGTH');
      assert.equal(e.details.got, SIZE - 1);
      assert.equal(e.details.want, SIZE);
    }
    // A PUSH with no payload at all.
    rejects(() => decodeFrame(encodeFrame(header(MsgType.PUSH)), OPTS), 'PROTO_BAD_LENGTH');
    // Header claims more values than the layout while the frame is still within maxBytes.
    const lying = pushFrame().slice(0, HEADER_BYTES + 4 * SIZE);
    new DataView(lying.buffer).setUint32(28, SIZE + 1, true);
    rejects(() => decodeFrame(lying, OPTS), 'PROTO_BAD_LENGTH');
  });

  test('PROTO_BAD_LENGTH: frame bytes disagree with the header', () => {
    const full = pushFrame();
    // Truncated by a whole value, and by a partial value.
    for (const cut of [4, 1, 4 * SIZE]) {
      const e = rejects(() => decodeFrame(full.subarray(0, full.byteLength - cut), OPTS), 'PROTO_BAD_LENGTH');
      assert.equal(e.details.want, SIZE);
    }
    // A PULL with trailing bytes after its (empty) payload.
    const pull = new Uint8Array(HEADER_BYTES + 4);
    pull.set(encodeFrame(header(MsgType.PULL)));
    rejects(() => decodeFrame(pull, OPTS), 'PROTO_BAD_LENGTH');
  });

  test('PROTO_BAD_COUNT: a PUSH with count 0', () => {
    const e = rejects(() => decodeFrame(pushFrame(TRICKY, { count: 0 }), OPTS), 'PROTO_BAD_COUNT');
    assert.equal(e.details.count, 0);
    // count 1 is the smallest legal push.
    assert.equal(decodeFrame(pushFrame(TRICKY, { count: 1 }), OPTS).count, 1);
  });

  test('PROTO_NON_FINITE: NaN, +Inf, -Inf at the first, a middle and the last index', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (const index of [0, 2, SIZE - 1]) {
        for (const type of [MsgType.PUSH, MsgType.WEIGHTS]) {
          const payload = Float32Array.from(TRICKY);
          payload[index] = bad;
          const e = rejects(() => decodeFrame(enc(header(type), payload), OPTS), 'PROTO_NON_FINITE');
          assert.equal(e.details.index, index, `${bad} at ${index}`);
          assert.equal(e.details.value, String(bad));
        }
      }
    }
  });

  test('PROTO_NON_FINITE also for a NaN with a payload (non-canonical bit pattern), in an unaligned frame', () => {
    const bytes = pushFrame(new Float32Array(SIZE));
    new DataView(bytes.buffer).setUint32(HEADER_BYTES + 4 * 3, 0x7fc0beef, true);
    const big = new Uint8Array(bytes.byteLength + 3);
    big.set(bytes, 3);
    const e = rejects(() => decodeFrame(big.subarray(3), OPTS), 'PROTO_NON_FINITE');
    assert.equal(e.details.index, 3);
  });

  test('PROTO_OVERSIZE: default limit is one full frame, and maxBytes is honoured', () => {
    const exact = pushFrame();
    assert.equal(decodeFrame(exact, OPTS).payload.length, SIZE, 'a frame of exactly the limit is fine');
    const tooBig = new Uint8Array(exact.byteLength + 1);
    tooBig.set(exact);
    const e = rejects(() => decodeFrame(tooBig, OPTS), 'PROTO_OVERSIZE');
    assert.equal(e.details.bytes, exact.byteLength + 1);
    assert.equal(e.details.limit, HEADER_BYTES + 4 * SIZE);
    // A push with more values than the layout is oversize before anything else is checked.
    rejects(() => decodeFrame(encodeFrame(header(MsgType.PUSH), new Float32Array(SIZE + 1)), OPTS), 'PROTO_OVERSIZE');
    // A custom, smaller limit.
    const e2 = rejects(() => decodeFrame(exact, { ...OPTS, maxBytes: exact.byteLength - 1 }), 'PROTO_OVERSIZE');
    assert.equal(e2.details.limit, exact.byteLength - 1);
    // Garbage larger than the limit is refused as oversize, not parsed.
    rejects(() => decodeFrame(new Uint8Array(1 << 16), OPTS), 'PROTO_OVERSIZE');
  });
});

describe('firstNonFinite', () => {
  test('-1 for empty and all-finite arrays', () => {
    assert.equal(firstNonFinite(new Float32Array(0)), -1);
    assert.equal(firstNonFinite(TRICKY), -1);
    assert.equal(firstNonFinite(new Float32Array(1000)), -1);
  });

  test('index of the first NaN or infinity', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (const index of [0, 1, 499, 999]) {
        const a = new Float32Array(1000).fill(1.5);
        a[index] = bad;
        assert.equal(firstNonFinite(a), index);
      }
    }
    const two = new Float32Array([1, 2, Infinity, 4, NaN]);
    assert.equal(firstNonFinite(two), 2);
    // float32 overflow: a finite double that rounds to Infinity in float32.
    assert.equal(firstNonFinite(new Float32Array([0, 1e39])), 1);
  });
});

describe('meta block of WEIGHTS and OFFER frames', () => {
  test('OFFER round trip: tag, record and payload survive; flags too', () => {
    const h = header(MsgType.OFFER, { count: 0, flags: 0 });
    const f = decodeFrame(enc(h, TRICKY), OPTS);
    assert.equal(f.type, MsgType.OFFER);
    assert.deepEqual(f.meta, META);
    assert.deepEqual(bits(f.payload), bits(TRICKY));
    const ack = decodeFrame(encodeFrame(header(MsgType.ACK, { flags: Flag.DUPLICATE | Flag.ADOPTED })), OPTS);
    assert.equal(ack.flags, Flag.DUPLICATE | Flag.ADOPTED);
  });

  test('retypeFrame turns received WEIGHTS into an OFFER from a given worker, bytes otherwise equal', () => {
    const weights = enc(header(MsgType.WEIGHTS, { workerId: 0 }), TRICKY);
    const offer = retypeFrame(weights, MsgType.OFFER, 1234);
    const f = decodeFrame(offer, OPTS);
    assert.equal(f.type, MsgType.OFFER);
    assert.equal(f.workerId, 1234);
    assert.deepEqual([...offer.subarray(24)], [...weights.subarray(24)]);
    assert.equal(decodeFrame(weights, OPTS).type, MsgType.WEIGHTS, 'the original is untouched');
  });

  test('encodeFrame refuses WEIGHTS without meta and PUSH with meta', () => {
    assert.throws(() => encodeFrame(header(MsgType.WEIGHTS), TRICKY), /needs a meta block/);
    assert.throws(() => encodeFrame(header(MsgType.PUSH), TRICKY, META), /has no meta block/);
  });

  test('PROTO_BAD_META: inconsistent length, too many entries, block past the end', () => {
    const good = enc(header(MsgType.WEIGHTS), TRICKY);
    const wrongLength = good.slice();
    new DataView(wrongLength.buffer).setUint32(HEADER_BYTES, 40, true);
    rejects(() => decodeFrame(wrongLength, OPTS), 'PROTO_BAD_META');
    const tooMany = good.slice();
    new DataView(tooMany.buffer).setUint32(HEADER_BYTES + 4 + TAG_BYTES, 5, true);
    rejects(() => decodeFrame(tooMany, { ...OPTS, maxRecordEntries: 4 }), 'PROTO_BAD_META');
    const huge = good.slice();
    const view = new DataView(huge.buffer);
    view.setUint32(HEADER_BYTES + 4 + TAG_BYTES, 1000, true);
    view.setUint32(HEADER_BYTES, TAG_BYTES + 4 + 12 * 1000, true);
    rejects(() => decodeFrame(huge, OPTS), 'PROTO_BAD_META');
    rejects(() => decodeFrame(good.subarray(0, HEADER_BYTES + 20), OPTS), 'PROTO_BAD_META');
  });

  test('a WEIGHTS frame with its payload cut is PROTO_BAD_LENGTH, not a shorter model', () => {
    const good = enc(header(MsgType.WEIGHTS), TRICKY);
    rejects(() => decodeFrame(good.subarray(0, good.byteLength - 4), OPTS), 'PROTO_BAD_LENGTH');
  });
});
