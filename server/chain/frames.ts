/**
 * The chain's node-to-node frames (types in shared/protocol.ts ChainMsg; grammar in
 * docs/PROTOCOL.md). One 40-byte header, little-endian:
 *
 *   offset size field
 *   0      4    magic          'TSWM', as worker frames
 *   4      1    version        PROTOCOL_VERSION
 *   5      1    type           ChainMsg
 *   6      1    dtype          0 (float32)
 *   7      1    flags          FORWARD: Flag.FLUSH of the worker's push
 *   8      4    layoutHash
 *   12     4    epoch          chain epoch of the sender's link: older than the receiver's is refused
 *   16     4    version        FORWARD: model version after the update; CHAIN_ACK: highest version
 *                              the tail applied; STATE: the state's version
 *   20     4    workerId       FORWARD only
 *   24     4    seq            FORWARD only
 *   28     4    count          FORWARD only: gradients summed
 *   32     4    baseVersion    FORWARD: version the gradient was computed on; STATE: version of
 *                              the first history entry
 *   36     4    payloadLength  float32 values that follow (FORWARD: the gradient; STATE: weights)
 *
 * FORWARD and STATE then carry the run's control block (16 bytes; replicated control, issue 13):
 *
 *   40     4    controlVersion changes of lr or rule made at a head so far (0: none)
 *   44     4    rule           index in RULE_NAMES (server/ps/rules.ts)
 *   48     8    lr             f64, exactly the head's optimizer.lr
 *   56     4*n  payload
 *
 * A FORWARD carries the control in force when the head applied it, so a replica applies every
 * update under the same lr and rule as the head did, in the same order; a STATE the control in
 * force at its version, so a node that joins later takes the run's current lr and rule.
 *
 * STATE continues after the weights: u32 velocity length (0 or n) and the velocity; u32 k and
 * k record entries (workerId, seq, version: u32 each); u32 h and h history entries (workerId,
 * seq: u32 each) for versions baseVersion .. baseVersion + h - 1.
 */
import { TabswarmError } from '../../shared/errors.ts';
import { ChainMsg, Dtype, MAGIC, PROTOCOL_VERSION, firstNonFinite, readFloat32, type AppliedRecordEntry } from '../../shared/protocol.ts';

export const CHAIN_HEADER_BYTES = 40;
/** Bytes of the control block after the header of FORWARD and STATE. */
export const CONTROL_BYTES = 16;

/** The run's control as it travels: versioned, and exact (lr as a float64). */
export interface ControlBlock {
  readonly version: number;
  /** Index in RULE_NAMES. */
  readonly rule: number;
  readonly lr: number;
}
/** Byte offset of the epoch field in the header. */
const EPOCH_OFFSET = 12;

/**
 * Rewrites the epoch of an encoded FORWARD or STATE in place: a frame kept for a resend, or
 * passed on down the chain, travels on a link of another epoch than the one it was encoded for,
 * and the receiver refuses frames of any epoch but its link's. The bytes must be the sender's
 * own copy (each WebSocket message arrives in a buffer of its own, so a received frame is).
 */
export function restampEpoch(bytes: Uint8Array, epoch: number): void {
  if (bytes.byteLength < CHAIN_HEADER_BYTES) throw new RangeError(`restampEpoch: ${bytes.byteLength} bytes is shorter than a chain header (${CHAIN_HEADER_BYTES})`);
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(EPOCH_OFFSET, epoch >>> 0, true);
}

/** The epoch of an encoded chain frame (header only; the frame is not otherwise checked). */
export function frameEpoch(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(EPOCH_OFFSET, true);
}

export interface ForwardFrame {
  readonly type: typeof ChainMsg.FORWARD;
  readonly epoch: number;
  readonly version: number;
  readonly workerId: number;
  readonly seq: number;
  readonly count: number;
  readonly baseVersion: number;
  readonly flags: number;
  readonly control: ControlBlock;
  readonly grad: Float32Array;
}

export interface AckFrame {
  readonly type: typeof ChainMsg.CHAIN_ACK;
  readonly epoch: number;
  readonly version: number;
}

/** One applied update in a replica's history: which worker's push made `version`. */
export interface HistoryEntry {
  readonly workerId: number;
  readonly seq: number;
}

export interface StateFrame {
  readonly type: typeof ChainMsg.STATE;
  readonly epoch: number;
  readonly version: number;
  readonly control: ControlBlock;
  readonly weights: Float32Array;
  readonly velocity: Float32Array;
  readonly record: readonly AppliedRecordEntry[];
  /** Version of history[0]; history[i] made version historyStart + i. */
  readonly historyStart: number;
  readonly history: readonly HistoryEntry[];
}

export type ChainFrame = ForwardFrame | AckFrame | StateFrame;

function header(bytes: Uint8Array, type: number, layoutHash: number, epoch: number, version: number, n: number): DataView {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  v.setUint32(0, MAGIC, true);
  v.setUint8(4, PROTOCOL_VERSION);
  v.setUint8(5, type);
  v.setUint8(6, Dtype.FLOAT32);
  v.setUint32(8, layoutHash >>> 0, true);
  v.setUint32(EPOCH_OFFSET, epoch >>> 0, true);
  v.setUint32(16, version >>> 0, true);
  v.setUint32(36, n >>> 0, true);
  return v;
}

function putControl(v: DataView, c: ControlBlock): void {
  v.setUint32(CHAIN_HEADER_BYTES, c.version >>> 0, true);
  v.setUint32(CHAIN_HEADER_BYTES + 4, c.rule >>> 0, true);
  v.setFloat64(CHAIN_HEADER_BYTES + 8, c.lr, true);
}

/** The control block of FORWARD or STATE; CHAIN_BAD_FRAME unless lr is positive and finite. */
function readControl(v: DataView, rules: number): ControlBlock {
  const c = { version: v.getUint32(CHAIN_HEADER_BYTES, true), rule: v.getUint32(CHAIN_HEADER_BYTES + 4, true), lr: v.getFloat64(CHAIN_HEADER_BYTES + 8, true) };
  if (!(c.lr > 0 && Number.isFinite(c.lr))) throw bad(`control block with lr ${c.lr}`);
  if (c.rule >= rules) throw bad(`control block with rule ${c.rule} (${rules} rules)`);
  return c;
}

/** Where FORWARD's and STATE's payload starts. */
const BODY = CHAIN_HEADER_BYTES + CONTROL_BYTES;

function putFloats(bytes: Uint8Array, offset: number, values: Float32Array): void {
  bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), offset);
}

export function encodeForward(layoutHash: number, f: Omit<ForwardFrame, 'type'>): Uint8Array {
  const bytes = new Uint8Array(BODY + 4 * f.grad.length);
  const v = header(bytes, ChainMsg.FORWARD, layoutHash, f.epoch, f.version, f.grad.length);
  putControl(v, f.control);
  v.setUint8(7, f.flags);
  v.setUint32(20, f.workerId >>> 0, true);
  v.setUint32(24, f.seq >>> 0, true);
  v.setUint32(28, f.count >>> 0, true);
  v.setUint32(32, f.baseVersion >>> 0, true);
  putFloats(bytes, BODY, f.grad);
  return bytes;
}

export function encodeAck(layoutHash: number, epoch: number, version: number): Uint8Array {
  const bytes = new Uint8Array(CHAIN_HEADER_BYTES);
  header(bytes, ChainMsg.CHAIN_ACK, layoutHash, epoch, version, 0);
  return bytes;
}

export function encodeState(layoutHash: number, s: Omit<StateFrame, 'type'>): Uint8Array {
  const n = s.weights.length;
  const size = BODY + 4 * n + 4 + 4 * s.velocity.length + 4 + 12 * s.record.length + 4 + 8 * s.history.length;
  const bytes = new Uint8Array(size);
  const v = header(bytes, ChainMsg.STATE, layoutHash, s.epoch, s.version, n);
  v.setUint32(32, s.historyStart >>> 0, true);
  putControl(v, s.control);
  let o = BODY;
  putFloats(bytes, o, s.weights);
  o += 4 * n;
  v.setUint32(o, s.velocity.length, true);
  putFloats(bytes, o + 4, s.velocity);
  o += 4 + 4 * s.velocity.length;
  v.setUint32(o, s.record.length, true);
  o += 4;
  for (const r of s.record) {
    v.setUint32(o, r.workerId >>> 0, true);
    v.setUint32(o + 4, r.seq >>> 0, true);
    v.setUint32(o + 8, r.version >>> 0, true);
    o += 12;
  }
  v.setUint32(o, s.history.length, true);
  o += 4;
  for (const h of s.history) {
    v.setUint32(o, h.workerId >>> 0, true);
    v.setUint32(o + 4, h.seq >>> 0, true);
    o += 8;
  }
  return bytes;
}

export interface ChainDecodeOptions {
  readonly layoutHash: number;
  readonly layoutSize: number;
  /** How many rules a control block may name. @default RULE_COUNT */
  readonly rules?: number;
}

/** RULE_NAMES.length, kept here so the codec does not import the PS. */
const RULE_COUNT = 64;

function bad(detail: string): TabswarmError {
  return new TabswarmError('CHAIN_BAD_FRAME', { detail });
}

/** Decodes and validates one chain frame; throws CHAIN_BAD_FRAME for anything malformed. */
export function decodeChainFrame(bytes: Uint8Array, opts: ChainDecodeOptions): ChainFrame {
  if (bytes.byteLength < CHAIN_HEADER_BYTES) throw bad(`${bytes.byteLength} bytes is shorter than the ${CHAIN_HEADER_BYTES}-byte header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0, true) !== MAGIC) throw bad('bad magic');
  if (v.getUint8(4) !== PROTOCOL_VERSION) throw bad(`protocol version ${v.getUint8(4)}`);
  const type = v.getUint8(5);
  if (v.getUint8(6) !== Dtype.FLOAT32) throw bad(`dtype ${v.getUint8(6)}`);
  if (v.getUint32(8, true) !== opts.layoutHash >>> 0) throw bad(`layout hash ${v.getUint32(8, true)} is not ${opts.layoutHash >>> 0}`);
  const epoch = v.getUint32(EPOCH_OFFSET, true);
  const version = v.getUint32(16, true);
  const n = v.getUint32(36, true);
  switch (type) {
    case ChainMsg.CHAIN_ACK:
      if (n !== 0 || bytes.byteLength !== CHAIN_HEADER_BYTES) throw bad('an ack carries no payload');
      return { type, epoch, version };
    case ChainMsg.FORWARD: {
      if (n !== opts.layoutSize || bytes.byteLength !== BODY + 4 * n) throw bad(`forward of ${n} values (${bytes.byteLength} bytes); the layout has ${opts.layoutSize}`);
      const count = v.getUint32(28, true);
      if (count < 1) throw bad('forward with count 0');
      const control = readControl(v, opts.rules ?? RULE_COUNT);
      const grad = readFloat32(bytes, BODY, n);
      const at = firstNonFinite(grad);
      if (at >= 0) throw bad(`non-finite gradient value at ${at}`);
      return { type, epoch, version, flags: v.getUint8(7), workerId: v.getUint32(20, true), seq: v.getUint32(24, true), count, baseVersion: v.getUint32(32, true), control, grad };
    }
    case ChainMsg.STATE: {
      if (n !== opts.layoutSize) throw bad(`state of ${n} weights; the layout has ${opts.layoutSize}`);
      if (bytes.byteLength < BODY) throw bad('state truncated in its control block');
      const control = readControl(v, opts.rules ?? RULE_COUNT);
      let o = BODY;
      const need = (k: number, what: string) => {
        if (o + k > bytes.byteLength) throw bad(`state truncated in ${what}`);
      };
      need(4 * n + 4, 'weights');
      const weights = readFloat32(bytes, o, n);
      o += 4 * n;
      const vn = v.getUint32(o, true);
      if (vn !== 0 && vn !== n) throw bad(`velocity of ${vn} values`);
      o += 4;
      need(4 * vn + 4, 'velocity');
      const velocity = readFloat32(bytes, o, vn);
      o += 4 * vn;
      const k = v.getUint32(o, true);
      o += 4;
      need(12 * k + 4, 'record');
      const record: AppliedRecordEntry[] = [];
      for (let i = 0; i < k; i++, o += 12) record.push({ workerId: v.getUint32(o, true), seq: v.getUint32(o + 4, true), version: v.getUint32(o + 8, true) });
      const h = v.getUint32(o, true);
      o += 4;
      need(8 * h, 'history');
      const history: HistoryEntry[] = [];
      for (let i = 0; i < h; i++, o += 8) history.push({ workerId: v.getUint32(o, true), seq: v.getUint32(o + 4, true) });
      if (o !== bytes.byteLength) throw bad(`${bytes.byteLength - o} stray bytes after the state`);
      if (firstNonFinite(weights) >= 0 || firstNonFinite(velocity) >= 0) throw bad('non-finite state');
      return { type, epoch, version, control, weights, velocity, record, historyStart: v.getUint32(32, true), history };
    }
    default:
      throw bad(`type 0x${type.toString(16)} is not a chain frame`);
  }
}
