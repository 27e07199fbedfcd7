/**
 * `topk`: the k values of largest magnitude, with their indices; every other value is 0.
 * Payload:
 *
 *   u32 k (0..floor(n / 2)) · u32 index[k] (strictly increasing, < n) · f32 value[k] (finite)
 *
 * k = clamp(ceil(ratio * n), 1, floor(n / 2)): at most half the layout, so a topk frame is never
 * larger than a float32 one. Bound: the dropped values, which error feedback carries to later
 * pushes: ||err||_2 = ||x minus its top k||_2, and each kept value is exact.
 */
import { TabswarmError } from '../errors.ts';
import { f32At, putF32, putU32, u32At, view } from './bytes.ts';
import { Codec, type CodecImpl } from './types.ts';

const bad = (detail: string) => new TabswarmError('PROTO_BAD_CODEC', { codec: 'topk', detail });

export function topkCount(n: number, ratio = 0.01): number {
  return Math.min(Math.floor(n / 2), Math.max(1, Math.ceil(ratio * n)));
}

/** The k-th largest of `a` (1-based), reordering `a` (iterative quickselect, O(n) expected). */
function kthLargest(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1;
  while (lo < hi) {
    // Median of three as pivot, so sorted or constant input does not go quadratic.
    const mid = (lo + hi) >>> 1;
    const pivot = Math.max(Math.min(a[lo]!, a[mid]!), Math.min(Math.max(a[lo]!, a[mid]!), a[hi]!));
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[lo]!;
}

/**
 * The indices a topk payload keeps (its support: every other value is 0), as a view when
 * aligned. Only for a payload `decodeInto` already accepted: the PS's sparse step uses it.
 */
export function topkSupport(payload: Uint8Array): Uint32Array {
  return u32At(payload, 4, view(payload).getUint32(0, true));
}

export const topk: CodecImpl = {
  name: 'topk',
  dtype: Codec.topk,
  lossy: true,
  bound: '||x - top_k(x)||_2 over the vector; kept values exact',
  encode(x, opts) {
    const n = x.length;
    const k = topkCount(n, opts?.topkRatio);
    const mags = new Float32Array(n);
    for (let i = 0; i < n; i++) mags[i] = Math.abs(x[i]!);
    const threshold = k > 0 ? kthLargest(mags, k) : Infinity;
    // Everything above the threshold, then ties at it until k: indices come out increasing.
    let above = 0;
    for (let i = 0; i < n; i++) if (Math.abs(x[i]!) > threshold) above++;
    let ties = k - above;
    const index = new Uint32Array(k);
    const value = new Float32Array(k);
    let m = 0;
    for (let i = 0; i < n && m < k; i++) {
      const a = Math.abs(x[i]!);
      if (a > threshold || (a === threshold && ties-- > 0)) {
        index[m] = i;
        value[m++] = x[i]!;
      }
    }
    const out = new Uint8Array(4 + 8 * k);
    view(out).setUint32(0, k, true);
    putU32(out, 4, index);
    putF32(out, 4 + 4 * k, value);
    return out;
  },
  decode(payload, n) {
    const out = new Float32Array(n);
    topk.decodeInto(payload, n, out);
    return out;
  },
  decodeInto(payload, n, out) {
    if (payload.byteLength < 4) throw bad(`${payload.byteLength} payload bytes: no count`);
    const k = view(payload).getUint32(0, true);
    if (k > Math.floor(n / 2)) throw bad(`k = ${k} exceeds half the ${n} values`);
    if (payload.byteLength !== 4 + 8 * k) throw bad(`${payload.byteLength} payload bytes, ${4 + 8 * k} expected for k = ${k}`);
    const index = u32At(payload, 4, k);
    const value = f32At(payload, 4 + 4 * k, k);
    out.fill(0);
    // norm.ts's order over the kept values: zeros add nothing to a float64 sum, so this is the
    // norm of all n values, bit for bit.
    const sums = [0, 0, 0, 0];
    let prev = -1;
    for (let j = 0; j < k; j++) {
      const i = index[j]!;
      if (i <= prev) throw bad(`index ${j} (${i}) does not follow ${prev}: indices must be strictly increasing`);
      if (i >= n) throw bad(`index ${j} (${i}) is outside the ${n} values`);
      const v = value[j]!;
      if (v - v !== 0) throw bad(`value ${j} is ${v}: values must be finite`);
      out[i] = v;
      sums[i & 3]! += v * v;
      prev = i;
    }
    return sums[0]! + sums[1]! + (sums[2]! + sums[3]!);
  },
};
