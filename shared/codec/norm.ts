/**
 * The one summation order for squared L2 norms on the PS: value i goes into float64 sum i % 4,
 * and the four are added as (s0 + s1) + (s2 + s3). Four independent sums instead of one keep
 * the adder busy (a single running sum waits on its own latency for every value: about 1.2 ms
 * per fashion-cnn gradient here, against 0.4 ms). The decoders, the optimizer's step and the
 * aggregators' `l2` all sum in this order, so a norm computed in a decode pass equals, bit for
 * bit, the one an aggregator would compute from the decoded values.
 *
 * A sum of squares of float32 values is finite exactly when every value is (a finite float32
 * squared is below 1.2e77), so the hot loops check the total, not each value.
 */
export function sumSq(x: Float32Array): number {
  const n = x.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a = x[i]!;
    const b = x[i + 1]!;
    const c = x[i + 2]!;
    const d = x[i + 3]!;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  if (i < n) s0 += x[i]! * x[i]!;
  if (i + 1 < n) s1 += x[i + 1]! * x[i + 1]!;
  if (i + 2 < n) s2 += x[i + 2]! * x[i + 2]!;
  return s0 + s1 + (s2 + s3);
}
