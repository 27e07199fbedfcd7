/**
 * TEST ONLY: a hostile worker, for the attack suite (test/byzantine.test.ts, bench/byzantine.ts).
 * `tabswarm worker --attack NAME[:PARAM]` rewrites each push just before it is sent; the loop
 * is otherwise the honest one, so the attacker trains, pulls and acks like any volunteer.
 *
 *   sign-flip[:k]   -k g                         (k = 1)
 *   scale:k         k g                          (e.g. 1e3, 1e30)
 *   noise:s         Gaussian noise of std s, no gradient at all (s = 1)
 *   zero            zeros (a free rider)
 *   alie[:z]        "A little is enough" (Baruch et al., NeurIPS 2019): mean - z std per coordinate,
 *                   from the attacker's own running moments of its gradients (z = 1)
 *   ipm[:e]         inner-product manipulation (Xie et al., UAI 2020): -e x the running mean (e = 1)
 *   lie-base        claims a base version far ahead of anything sent (PS_CLAIM_AHEAD)
 *   lie-count       claims 10^9 gradients (PS_COUNT_TOO_LARGE)
 *   replay          the first gradient again and again, under fresh sequence numbers
 *   label-flip      trains on its own shards with every label y turned into 9 - y (the push is
 *                   the honest gradient of the wrong labels: `relabel`, applied by client/replica.ts)
 */
import type { Outgoing } from './state.ts';

/** Rewrites a push; `relabel`, when set, rewrites each training batch's labels first. */
export type PushAttack = ((out: Outgoing) => Outgoing) & { relabel?: (labels: Uint8Array) => void };

export const ATTACK_NAMES = ['sign-flip', 'scale', 'noise', 'zero', 'alie', 'ipm', 'lie-base', 'lie-count', 'replay', 'label-flip'] as const;

/** Classes of the data sets (MNIST, Fashion-MNIST): label-flip maps y to CLASSES - 1 - y. */
const CLASSES = 10;

/** Seeded normal samples (Box-Muller over mulberry32), so a run is repeatable. */
function gaussian(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** Running per-coordinate mean and variance (Welford) of the attacker's own gradients. */
class Moments {
  n = 0;
  mean = new Float64Array(0);
  m2 = new Float64Array(0);
  add(g: Float32Array): void {
    if (this.mean.length !== g.length) [this.n, this.mean, this.m2] = [0, new Float64Array(g.length), new Float64Array(g.length)];
    this.n += 1;
    for (let i = 0; i < g.length; i++) {
      const d = g[i]! - this.mean[i]!;
      this.mean[i] = this.mean[i]! + d / this.n;
      this.m2[i] = this.m2[i]! + d * (g[i]! - this.mean[i]!);
    }
  }
  std(i: number): number {
    return this.n > 1 ? Math.sqrt(this.m2[i]! / (this.n - 1)) : 0;
  }
}

function map(out: Outgoing, f: (v: number, i: number) => number): Outgoing {
  return { ...out, grad: Float32Array.from(out.grad, f) };
}

/** Parses `NAME[:PARAM]`; throws RangeError naming the option for anything else. */
export function createAttack(spec: string, seed = 1): PushAttack {
  const [name, arg] = spec.split(':', 2) as [string, string | undefined];
  const param = (dflt: number) => {
    const v = arg === undefined ? dflt : Number(arg);
    if (!Number.isFinite(v)) throw new RangeError(`createAttack: option '--attack' has a bad parameter '${arg}'`);
    return v;
  };
  const moments = new Moments();
  switch (name) {
    case 'sign-flip': {
      const k = param(1);
      return (out) => map(out, (v) => -k * v);
    }
    case 'scale': {
      const k = param(1e3);
      return (out) => map(out, (v) => Math.fround(k * v));
    }
    case 'noise': {
      const s = param(1);
      const g = gaussian(seed);
      return (out) => map(out, () => s * g());
    }
    case 'zero':
      return (out) => map(out, () => 0);
    case 'alie': {
      const z = param(1);
      return (out) => {
        moments.add(out.grad);
        return map(out, (_, i) => moments.mean[i]! - z * moments.std(i));
      };
    }
    case 'ipm': {
      const e = param(1);
      return (out) => {
        moments.add(out.grad);
        return map(out, (_, i) => -e * moments.mean[i]!);
      };
    }
    case 'lie-base':
      return (out) => ({ ...out, baseVersion: out.baseVersion + 1_000_000 });
    case 'lie-count':
      return (out) => ({ ...out, count: 1_000_000_000 });
    case 'replay': {
      let first: Float32Array | undefined;
      return (out) => {
        first ??= Float32Array.from(out.grad);
        return { ...out, grad: first };
      };
    }
    case 'label-flip':
      return Object.assign((out: Outgoing) => out, {
        relabel: (labels: Uint8Array) => {
          for (let i = 0; i < labels.length; i++) labels[i] = CLASSES - 1 - labels[i]!;
        },
      });
    default:
      throw new RangeError(`createAttack: option '--attack' must be one of ${ATTACK_NAMES.join(', ')}, got '${spec}'`);
  }
}
