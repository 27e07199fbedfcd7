import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TabswarmError } from '../../../shared/errors.ts';
import { deriveLayout } from '../../../shared/layout.ts';
import type { ModelSpec } from '../../../shared/models.ts';
import { ParameterStore } from '../store.ts';
import { CENTER_BETA } from './centered-clip.ts';
import { COUNT_SLACK, ClaimCheck, RATE_SAMPLES } from './claims.ts';
import { decisionOf, forwardOf } from './decision.ts';
import { AGGREGATOR_DEFAULTS, AGGREGATOR_NAMES, AGGREGATORS, createAggregator, type AggregatorOptions } from './index.ts';
import { trimmedMean } from './trimmed-mean.ts';
import { l2 } from './types.ts';

const OPTS: AggregatorOptions = { ...AGGREGATOR_DEFAULTS, clipFactor: 2, clipWindow: 4, clipWarmup: 10 };
const vec = (...v: number[]) => Float32Array.from(v);

function pseudo(seed: number, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 3);
}

describe('aggregator registry', () => {
  test('every name has an entry, and an unknown name is CONFIG_INVALID', () => {
    assert.deepEqual(Object.keys(AGGREGATORS).sort(), [...AGGREGATOR_NAMES].sort());
    assert.throws(() => createAggregator('krum', OPTS, 4), (e: unknown) => e instanceof TabswarmError && e.code === 'CONFIG_INVALID' && /krum/.test(e.message));
    assert.throws(() => createAggregator('trimmed-mean', { ...OPTS, buckets: 4, trim: 2 }, 4), /--trim/);
  });

  test('none hands the gradient through untouched, and the rule scales it', () => {
    const a = createAggregator('none', OPTS, 3);
    const g = vec(1e30, -2, 3);
    assert.equal(a.admit(g, 0.5), g);
    assert.deepEqual([...g], [...vec(1e30, -2, 3)]);
    assert.equal(a.scales, false);
  });
});

describe('clip', () => {
  test('warm-up: the absolute bound until K pushes, and never above c x median of what was seen', () => {
    const a = createAggregator('clip', OPTS, 2);
    const first = a.admit(vec(300, 400), 1)!; // norm 500 -> warm-up bound 10
    assert.ok(Math.abs(l2(first) - 10) < 1e-4);
    const second = a.admit(vec(0, 3), 1)!; // median 10 -> radius min(10, 20): 3 passes
    assert.deepEqual([...second], [0, 3]);
    assert.equal(a.stats().clipped, 1);
  });

  test('after warm-up the radius is c x the median of the last K accepted norms', () => {
    const a = createAggregator('clip', OPTS, 2);
    for (const n of [1, 2, 3, 4]) a.admit(vec(n, 0), 1);
    // accepted norms 1,2,3,4: median 2.5, radius 5
    assert.equal(a.stats().radius, 5);
    const out = a.admit(vec(0, 1e30), 1)!;
    assert.ok(Math.abs(l2(out) - 5) < 1e-3, `clipped to ${l2(out)}`);
    // the huge push entered the window as it came: ring 1e30,2,3,4 -> median 3.5; one of K cannot move it further
    assert.equal(a.stats().radius, 7);
  });

  test('clips the rule-scaled push: a flush summing 100 gradients is one update', () => {
    const a = createAggregator('clip', OPTS, 1);
    const out = a.admit(vec(1000), 1 / 100)!;
    assert.ok(Math.abs(out[0]! - 10) < 1e-4); // scale 1/100 applied, then clipped to 10
    assert.equal(a.scales, true);
  });

  test('a minority of huge pushes leaves the radius at c x an honest quantile', () => {
    const a = createAggregator('clip', { ...OPTS, clipWindow: 5 }, 1);
    for (const n of [1, 1e30, 2, 1e30, 3]) a.admit(vec(n), 1);
    assert.equal(a.stats().radius, 6); // 2 x median(1, 2, 3, 1e30, 1e30)
  });
});

describe('centered-clip', () => {
  test('the step is center + clipped deviation, and the center moves by beta', () => {
    const a = createAggregator('centered-clip', { ...OPTS, clipWarmup: 1 }, 2);
    const x1 = a.admit(vec(3, 4), 1)!; // center 0, deviation norm 5 > 1: step (0.6, 0.8)
    assert.ok(Math.abs(x1[0]! - 0.6) < 1e-6 && Math.abs(x1[1]! - 0.8) < 1e-6);
    // center = (1 - beta) * step
    const c = [(1 - CENTER_BETA) * 0.6, (1 - CENTER_BETA) * 0.8];
    // radius now min(1, 2 x 1) = 1; a push at the center plus (0.5, 0) passes unchanged
    const x2 = a.admit(vec(c[0]! + 0.5, c[1]!), 1)!;
    assert.ok(Math.abs(x2[0]! - (c[0]! + 0.5)) < 1e-6 && Math.abs(x2[1]! - c[1]!) < 1e-6);
    // a huge push moves the step at most tau from the center
    const center = [CENTER_BETA * c[0]! + (1 - CENTER_BETA) * x2[0]!, CENTER_BETA * c[1]! + (1 - CENTER_BETA) * x2[1]!];
    const tau = a.stats().radius;
    const x3 = a.admit(vec(-1e30, 1e30), 1)!;
    assert.ok(Math.hypot(x3[0]! - center[0]!, x3[1]! - center[1]!) <= tau * (1 + 1e-6));
  });
});

describe('trimmed-mean', () => {
  test('trimmedMean matches a hand computation', () => {
    const rows = [vec(1, 10), vec(2, -5), vec(100, 0), vec(3, 1), vec(-50, 2)];
    // column 0 sorted: -50 1 2 3 100, trim 1 -> mean(1,2,3) = 2; column 1: -5 0 1 2 10 -> mean(0,1,2) = 1
    assert.deepEqual([...trimmedMean(rows, 1, new Float32Array(2))], [2, 1]);
    // trim 2 of 5 is the median
    assert.deepEqual([...trimmedMean(rows, 2, new Float32Array(2))], [2, 1]);
  });

  test('collects a window of buckets, then applies once; an outlier bucket is trimmed away', () => {
    const a = createAggregator('trimmed-mean', { ...OPTS, bucketSize: 1, buckets: 5, trim: 1 }, 1);
    const pushes = [1, 2, 3, 4, 1e30];
    const out = pushes.map((p) => a.admit(vec(p), 1));
    assert.deepEqual(out.slice(0, 4), [null, null, null, null]);
    assert.deepEqual([...out[4]!], [3]); // sorted 1 2 3 4 1e30, trim 1 -> mean(2,3,4)
  });
});

describe('determinism', () => {
  for (const name of AGGREGATOR_NAMES) {
    test(`${name}: two stores fed the same pushes end bit for bit equal, and replicas applying the decisions too`, () => {
      const spec: ModelSpec = { name: 't', description: 't', input: [1, 1, 5], classes: 3, layers: [{ kind: 'flatten' }, { kind: 'dense', units: 3, activation: 'linear' }], defaults: { lr: 0.1, batch: 1 } };
      const layout = deriveLayout(spec);
      const init = pseudo(0, layout.size);
      const mk = () => {
        const s = new ParameterStore(layout, init, { lr: 0.05, momentum: 0.5 });
        s.aggregator = createAggregator(name, { ...OPTS, bucketSize: 2, buckets: 3, trim: 1 }, layout.size);
        s.maxNormJump = 2;
        return s;
      };
      const [a, b] = [mk(), mk()];
      const replica = new ParameterStore(layout, init, { lr: 0.05, momentum: 0.5 });
      for (let i = 1; i <= 40; i++) {
        const g = pseudo(i, layout.size);
        if (i % 7 === 0) g.fill(1e20); // hostile pushes among honest ones
        const u = (grad: Float32Array) => ({ workerId: 1 + (i % 3), seq: i, baseVersion: Math.max(0, i - 3), count: 1 + (i % 2), grad });
        a.apply(u(Float32Array.from(g)));
        b.apply(u(Float32Array.from(g)));
        const fwd = forwardOf(a.lastDecision, layout.size);
        replica.applyDecided(u(fwd.grad), decisionOf(fwd.flags, fwd.grad));
      }
      assert.deepEqual(new Uint8Array(a.weights.buffer), new Uint8Array(b.weights.buffer));
      assert.deepEqual(new Uint8Array(a.weights.buffer), new Uint8Array(replica.weights.buffer));
      assert.deepEqual(new Uint8Array(a.optimizer.velocity.buffer), new Uint8Array(replica.optimizer.velocity.buffer));
      assert.equal(a.version, 40);
      assert.equal(replica.version, 40);
      assert.ok(a.weights.every(Number.isFinite));
    });
  }
});

describe('restore', () => {
  // Decided: the aggregator's state is not in checkpoints, stateless copies or the chain's state
  // transfer. A restored (or promoted) head starts it over at the warm-up bound; replicas never
  // run it, so they stay bit for bit with whatever the head decides after the restore.
  test('a restored store restarts its aggregator at the warm-up radius, decides like a fresh store fed the same pushes, and its replica stays bit for bit', () => {
    const spec: ModelSpec = { name: 't', description: 't', input: [1, 1, 5], classes: 3, layers: [{ kind: 'flatten' }, { kind: 'dense', units: 3, activation: 'linear' }], defaults: { lr: 0.1, batch: 1 } };
    const layout = deriveLayout(spec);
    const mk = (init: Float32Array) => {
      const s = new ParameterStore(layout, init, { lr: 0.05, momentum: 0.5 });
      s.aggregator = createAggregator('clip', OPTS, layout.size);
      s.maxNormJump = 2;
      return s;
    };
    const head = mk(pseudo(0, layout.size));
    const push = (i: number, g: Float32Array) => ({ workerId: 1 + (i % 3), seq: i, baseVersion: Math.max(0, i - 3), count: 1, grad: g });
    for (let i = 1; i <= 20; i++) head.apply(push(i, pseudo(i, layout.size)));
    assert.notEqual(head.aggregator.stats().radius, OPTS.clipWarmup, 'past the warm-up, the radius follows the pushes');
    const snap = head.snapshot();
    head.restore(snap);
    assert.equal(head.aggregator.stats().radius, OPTS.clipWarmup, 'the restored head starts at the warm-up bound');
    const fresh = mk(snap.weights);
    fresh.restore(snap);
    const replica = mk(snap.weights);
    replica.restore(snap);
    for (let i = 21; i <= 40; i++) {
      const g = pseudo(i, layout.size);
      if (i % 5 === 0) g.fill(1e30); // an attacker right after the restore: cut to the warm-up radius
      head.apply(push(i, Float32Array.from(g)));
      fresh.apply(push(i, Float32Array.from(g)));
      const fwd = forwardOf(head.lastDecision, layout.size);
      replica.applyDecided(push(i, fwd.grad), decisionOf(fwd.flags, fwd.grad));
      assert.ok(head.weights.every(Number.isFinite));
    }
    assert.deepEqual(new Uint8Array(head.weights.buffer), new Uint8Array(fresh.weights.buffer));
    assert.deepEqual(new Uint8Array(head.weights.buffer), new Uint8Array(replica.weights.buffer));
  });
});

describe('output guard', () => {
  const spec: ModelSpec = { name: 't', description: 't', input: [1, 1, 2], classes: 1, layers: [{ kind: 'flatten' }, { kind: 'dense', units: 1, activation: 'linear' }], defaults: { lr: 1, batch: 1 } };
  const layout = deriveLayout(spec); // 3 values
  test('a version that would be non-finite or jump past the factor is refused; the last good one stays and the version advances', () => {
    const s = new ParameterStore(layout, vec(1, 1, 1), { lr: 1, momentum: 0 });
    s.maxNormJump = 2;
    s.apply({ workerId: 1, seq: 1, baseVersion: 0, count: 1, grad: vec(3e38, 3e38, 3e38) }); // 1 - 3e38*... overflows? no: finite but huge
    assert.deepEqual([...s.weights], [1, 1, 1]);
    assert.equal(s.guardRefused, 1);
    assert.match(s.lastGuardRefusal!.reason, /norm/);
    assert.equal(s.version, 1);
    assert.equal(s.lastDecision.grad, null);
    s.apply({ workerId: 1, seq: 2, baseVersion: 1, count: 1, grad: vec(-3e38, -3e38, -3e38) }); // 1 + 3e38 ... still finite in f32? 3e38+1 = 3e38
    assert.equal(s.guardRefused, 2);
    const ok = s.apply({ workerId: 1, seq: 3, baseVersion: 2, count: 1, grad: vec(0.5, 0, 0) });
    assert.equal(ok.applied, true);
    assert.deepEqual([...s.weights], [0.5, 1, 1]);
    // non-finite: overflow of float32
    s.maxNormJump = 0;
    s.optimizer.lr = 1e10;
    s.apply({ workerId: 1, seq: 4, baseVersion: 3, count: 1, grad: vec(3e38, 0, 0) });
    assert.equal(s.guardRefused, 3);
    assert.match(s.lastGuardRefusal!.reason, /finite/);
    assert.deepEqual([...s.weights], [0.5, 1, 1]);
  });
});

describe('claims', () => {
  const session = {};
  test('a base version ahead of what the session was sent is PS_CLAIM_AHEAD', () => {
    const c = new ClaimCheck({ maxCount: 10, sessionBound: true });
    c.joined(session, 5, false);
    c.check(session, 1, 5, 1, 9);
    assert.throws(() => c.check(session, 1, 6, 1, 9), (e: unknown) => e instanceof TabswarmError && e.code === 'PS_CLAIM_AHEAD');
    c.served(session, 8, false);
    c.check(session, 1, 8, 1, 9);
  });
  test('a count past the cap is PS_COUNT_TOO_LARGE', () => {
    const c = new ClaimCheck({ maxCount: 10, sessionBound: true });
    c.joined(session, 0, false);
    c.check(session, 1, 0, 10, 0);
    assert.throws(() => c.check(session, 1, 0, 11, 0), (e: unknown) => e instanceof TabswarmError && e.code === 'PS_COUNT_TOO_LARGE');
  });
  test('a resumed session may flush until its first pull; shared reads are bounded by the current version', () => {
    const c = new ClaimCheck({ maxCount: 10, sessionBound: true });
    const s = {};
    c.joined(s, 3, true);
    c.check(s, 1, 50, 1, 3);
    c.served(s, 4, true);
    assert.throws(() => c.check(s, 1, 50, 1, 4), /PS_CLAIM_AHEAD/);
    const shared = new ClaimCheck({ maxCount: 10, sessionBound: false });
    shared.joined(s, 3, false);
    shared.check(s, 1, 9, 1, 9);
    assert.throws(() => shared.check(s, 1, 10, 1, 9), /PS_CLAIM_AHEAD/);
  });
  test('a count is bounded by a credit earned at the rate: the cap, then 8x its measured rate', () => {
    const c = new ClaimCheck({ maxCount: 100000, sessionBound: true, maxRate: 100 });
    const s = {};
    c.joined(s, 0, false);
    c.check(s, 7, 0, 100000, 0, 0); // no push of worker 7 yet: --max-count alone (an outage's flush)
    c.counted(7, 100000, 0); // ...which spends the whole credit
    assert.equal(c.countBound(7, 1000), 100 + COUNT_SLACK, 'earned at --max-count-rate before the rate is measured');
    assert.throws(() => c.check(s, 7, 0, 100 + COUNT_SLACK + 1, 0, 1000), (e: unknown) => e instanceof TabswarmError && e.code === 'PS_COUNT_TOO_LARGE');
    // After an outage: the one unacknowledged push, then a few ms later the flush. Both were
    // earned over the whole outage (the nemesis saw a new head refuse such a flush when the
    // bound was the time since the last push).
    c.counted(7, 1, 1000);
    c.check(s, 7, 0, 99 + COUNT_SLACK, 0, 1005);
    assert.throws(() => c.check(s, 7, 0, 100 + COUNT_SLACK + 1, 0, 1005), /PS_COUNT_TOO_LARGE/, 'but not twice over');
    // One gradient every 100 ms (10 per second): once measured, the credit grows at 8 x 10 per second.
    const m = new ClaimCheck({ maxCount: 100000, sessionBound: true, maxRate: 100 });
    m.counted(9, 100000, 0);
    for (let i = 1; i <= RATE_SAMPLES; i++) m.counted(9, 1, 100 * i);
    const t = 100 * RATE_SAMPLES;
    // Unclaimed credit is carried over only up to the last interval's earnings (100 ms at
    // --max-count-rate until measured): claiming 1 per push does not save up --max-count.
    const carried = 100 * 0.1;
    assert.equal(m.countBound(9, t + 10_000), carried + 8 * 10 * 10 + COUNT_SLACK);
    // A patient liar: 1 gradient per push for 10 minutes, then one huge claim.
    for (let i = 1; i <= 6000; i++) m.counted(9, 1, t + 10_000 + 100 * i);
    assert.ok(m.countBound(9, t + 10_000 + 600_100) <= 2 * 8 * 10 * 0.1 + 1 + COUNT_SLACK, 'nothing saved up');
    assert.equal(m.countBound(8, t), 100000, 'another worker: no history');
  });
  test('a worker this PS never saw (a restarted PS, a new head) keeps the whole cap for the pushes that follow', () => {
    const c = new ClaimCheck({ maxCount: 5000, sessionBound: true, maxRate: 1000 });
    c.counted(3, 1, 0); // its outbox push first
    assert.equal(c.countBound(3, 2), 5000, 'then its flush may hold an outage this PS never saw');
    c.counted(3, 4000, 2);
    assert.equal(c.countBound(3, 3), 2 + 1 + COUNT_SLACK, 'spent: what the 2 ms since the first push earned at 1000/s, plus 1 ms');
  });
});

describe('running scale', () => {
  test('zero pushes (free riders) do not pull the clipping radius down', () => {
    const a = createAggregator('clip', { ...OPTS, clipWindow: 4, clipWarmup: 100 }, 2);
    for (let i = 0; i < 4; i++) a.admit(vec(3, 4), 1);
    for (let i = 0; i < 8; i++) a.admit(vec(0, 0), 1);
    assert.equal(a.stats().radius, 10, 'still 2 x the median honest norm 5');
    const honest = a.admit(vec(3, 4), 1)!;
    assert.deepEqual([...honest], [3, 4], 'an honest push is not clipped');
  });
});

describe('running scale: a median over workers as well as over pushes', () => {
  // Six honest workers (norm 5) and two hostile ones (norm 5000, in the honest direction: a scaled
  // push), the memory and the direction check off so that the radius alone is seen.
  const opts = { ...OPTS, clipWindow: 8, clipWarmup: 1e9, clipMemory: 0, directionTolerance: 0 };
  const warm = (a: ReturnType<typeof createAggregator>) => {
    for (let i = 0; i < 16; i++) a.admit(vec(3, 4), 1, undefined, 1 + (i % 6));
  };

  test('two attackers pushing on alone after the honest workers stopped do not take the radius', () => {
    const a = createAggregator('clip', opts, 2);
    warm(a);
    for (let i = 0; i < 40; i++) {
      const out = l2(a.admit(vec(3000, 4000), 1, undefined, 7 + (i % 2))!);
      assert.ok(out <= 10 + 1e-6, `lone push ${i}: clipped to 2 x the honest median 5, got ${out}`);
    }
    assert.equal(a.stats().radius, 10);
  });

  test('two attackers making most of the pushes do not take it either', () => {
    const a = createAggregator('clip', opts, 2);
    warm(a);
    for (let round = 0; round < 10; round++) {
      for (let w = 1; w <= 6; w++) {
        assert.ok(l2(a.admit(vec(3, 4), 1, undefined, w)!) > 5 - 1e-6, 'an honest push passes whole');
        // Four hostile pushes to each honest one: 8 of the last 10 pushes are theirs.
        for (let k = 0; k < 4; k++) {
          const out = l2(a.admit(vec(3000, 4000), 1, undefined, 7 + (k % 2))!);
          assert.ok(out <= 10 + 1e-6, `round ${round}: a hostile push clipped to 10, got ${out}`);
        }
      }
    }
  });

  test('with too few workers for a median of them (one honest, one hostile) the median of pushes still holds', () => {
    const a = createAggregator('clip', { ...opts, clipWindow: 9 }, 2);
    for (let i = 0; i < 9; i++) a.admit(vec(3, 4), 1, undefined, 1);
    for (let i = 0; i < 20; i++) {
      assert.ok(l2(a.admit(vec(60, 80), 1, undefined, 2)!) <= 10 + 1e-6);
      for (let k = 0; k < 3; k++) a.admit(vec(3, 4), 1, undefined, 1);
    }
  });
});

describe('clip: memory of excess', () => {
  // Honest norm 5 from worker 1, three pushes to each other push: the median stays 5, the radius 10.
  const opts = { ...OPTS, clipWindow: 9, clipWarmup: 1e9, directionTolerance: 0 };
  const honest = (a: ReturnType<typeof createAggregator>, k = 3) => {
    for (let i = 0; i < k; i++) a.admit(vec(3, 4), 1, undefined, 1);
  };

  test('a worker past the radius push after push gets a smaller radius; an honest one clipped once recovers', () => {
    const a = createAggregator('clip', opts, 2);
    honest(a, 9);
    // Worker 2 pushes norm 100, 10 times the radius, every time: clipped to 10, then by exp(-ln 10).
    for (let i = 0; i < 20; i++) {
      const out = l2(a.admit(vec(60, 80), 1, undefined, 2)!);
      assert.ok(Math.abs(out - 1) < 1e-5, `push ${i}: the radius over 10 (1), got ${out}`);
      honest(a);
    }
    // Worker 3, honest, is clipped once by 20% (norm 12 against 10), then pushes norm 5 again.
    const clipped = l2(a.admit(vec(7.2, 9.6), 1, undefined, 3)!);
    assert.ok(Math.abs(clipped - 10 / 1.2) < 1e-4, `its own first excess: 10 / 1.2, got ${clipped}`);
    honest(a);
    const next = l2(a.admit(vec(3, 4), 1, undefined, 3)!);
    assert.ok(Math.abs(next - 5 * Math.exp(-0.9 * Math.log(1.2))) < 1e-4, `then 5 exp(-0.9 ln 1.2), got ${next}`);
    let last = next;
    for (let i = 0; i < 40; i++) last = l2(a.admit(vec(3, 4), 1, undefined, 3)!);
    assert.ok(last > 4.95, `and after 40 pushes within the radius about 5 again, got ${last}`);
    assert.ok(a.stats().excessLimited! >= 21);
  });

  test('a push past the warm-up bound (before K pushes were seen) is clipped, not remembered', () => {
    const a = createAggregator('clip', { ...opts, clipWarmup: 2 }, 2);
    // Norm 5 against the warm-up bound 2, for the first 9 pushes: clipped to 2 each time.
    for (let i = 0; i < 9; i++) assert.ok(Math.abs(l2(a.admit(vec(3, 4), 1, undefined, 1)!) - 2) < 1e-5);
    // Warm now (radius 10): the same worker's push of norm 5 is applied whole.
    assert.ok(Math.abs(l2(a.admit(vec(3, 4), 1, undefined, 1)!) - 5) < 1e-5);
    assert.equal(a.stats().excessLimited, 0);
  });

  test('off with --clip-memory 0: a worker past the radius every time moves the weights by the full radius', () => {
    const a = createAggregator('clip', { ...opts, clipMemory: 0 }, 2);
    honest(a, 9);
    for (let i = 0; i < 10; i++) {
      assert.ok(Math.abs(l2(a.admit(vec(60, 80), 1, undefined, 2)!) - 10) < 1e-4);
      honest(a);
    }
    assert.equal(a.stats().excessLimited, 0);
  });
});

describe('clip: direction check', () => {
  /** Gaussian-ish noise from a seeded LCG: honest gradients are the true one plus much noise. */
  function noisy(seed: number, mean: Float32Array, noise: number): Float32Array {
    let x = (seed * 2654435761) >>> 0;
    const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    return Float32Array.from(mean, (m) => m + noise * (rnd() + rnd() + rnd() - 1.5) * 2);
  }

  // The sketch's salt is random per process, so the bounds must hold for any salt. Over 1,000
  // salts (the direction check alone, which decides these factors: the norms are alike and the
  // radius is off), the worst attacker's mean factor in the last 20 rounds had a 99th percentile
  // of 0.071 and a maximum of 0.138 at f = 2, and 0.248 and 0.426 at f = 3. The bounds were 0.05
  // and 0.25 until 2026-12-03, which 2.1% and 0.9% of salts broke (with the plain median before
  // the trust-weighted one too: 1 of 41 salts each, with the whole `clip`), so this test failed
  // about one run in 30. Over 100 salts with the whole `clip`, no honest push was cut at f <= 2,
  // and 8 of 10,000 were at f = 3 (the consensus of 7 others, 3 of them hostile until their
  // trust falls, is pulled their way: docs/benchmarks.md, "Third run").
  for (const f of [1, 2, 3]) {
    test(`${f} of 8 workers pushing against the consensus (sign flip, within the radius) are cut ${f < 3 ? 'to almost nothing; the honest ones are not' : 'mostly; few honest pushes are'}`, () => {
      const n = 2000;
      const mean = Float32Array.from({ length: n }, (_, i) => Math.cos(i) / Math.sqrt(n / 2)); // norm about 1
      const a = createAggregator('clip', { ...AGGREGATOR_DEFAULTS, clipWindow: 32, clipWarmup: 1e9 }, n);
      // Each honest push is the mean plus noise 4 times its norm: cos(push, mean) about 0.2.
      const factors = new Map<number, number[]>();
      let seed = 1;
      for (let round = 0; round < 40; round++) {
        for (let w = 0; w < 8; w++) {
          const g = noisy(seed++, mean, 4 * Math.sqrt(3 / n) * 1.2);
          if (w < f) for (let i = 0; i < n; i++) g[i] = -g[i]!;
          const before = l2(g);
          const out = a.admit(g, 1, undefined, 100 + w)!;
          (factors.get(w) ?? factors.set(w, []).get(w)!).push(l2(out) / before);
        }
      }
      // Judged from the 5th push of each worker once 32 pushes were seen; the last 20 rounds:
      let honestCut = 0;
      for (let w = 0; w < 8; w++) {
        const late = factors.get(w)!.slice(20);
        const mean = late.reduce((x, y) => x + y, 0) / late.length;
        if (w < f) assert.ok(mean < (f < 3 ? 0.2 : 0.5), `attacker ${w}: ${late.map((x) => x.toFixed(2)).join(' ')}`);
        else honestCut += late.filter((x) => x < 1 - 1e-6).length;
      }
      const honestPushes = (8 - f) * 20;
      if (f < 3) assert.equal(honestCut, 0, `honest pushes cut: ${honestCut}`);
      else assert.ok(honestCut <= 0.1 * honestPushes, `honest pushes cut: ${honestCut} of ${honestPushes}`);
      const { directionLimited } = a.stats();
      assert.ok(directionLimited! >= f * 15);
    });
  }

  // Over 100 salts: the lone flipper's largest factor was 0.037, and no lone honest push was cut.
  // Before the check reached back to the last workers to push, the flipper's 31st lone push and
  // every one after had factor 1 (its own pushes filled the window: no one judged it).
  /**
   * Six honest workers (ids 102-107) and two flippers (100, 101) push `rounds` rounds; returns a
   * push of the next (noisy, optionally flipped) gradient as worker w, and the factor it got.
   */
  const swarm = (rounds: number): ((flip: boolean, w: number) => number) => {
    const n = 2000;
    const mean = Float32Array.from({ length: n }, (_, i) => Math.cos(i) / Math.sqrt(n / 2));
    const a = createAggregator('clip', { ...AGGREGATOR_DEFAULTS, clipWindow: 32, clipWarmup: 1e9 }, n);
    let seed = 1;
    const push = (flip: boolean, w: number): number => {
      const g = noisy(seed++, mean, 4 * Math.sqrt(3 / n) * 1.2);
      if (flip) for (let i = 0; i < n; i++) g[i] = -g[i]!;
      const before = l2(g);
      return l2(a.admit(g, 1, undefined, w)!) / before;
    };
    for (let round = 0; round < rounds; round++) for (let w = 0; w < 8; w++) push(w < 2, 100 + w);
    return push;
  };

  for (const lone of ['flipper', 'honest worker'] as const) {
    test(`${lone === 'flipper' ? 'a' : 'an'} ${lone} pushing on alone after the others went quiet is judged against the last workers to push`, () => {
      // 30 rounds; then one of them alone, 60 pushes (the window of 32 is all its own after 32).
      const push = swarm(30);
      const factors = Array.from({ length: 60 }, () => push(lone === 'flipper', lone === 'flipper' ? 100 : 105));
      const shown = factors.map((x) => x.toFixed(2)).join(' ');
      if (lone === 'flipper') assert.ok(factors.every((x) => x < 0.1), `the lone flipper's factors: ${shown}`);
      // Alone, it gets at most its record (the running mean of its factors while it was judged
      // among others, about 1 here).
      else assert.ok(factors.every((x) => x > 0.95), `the lone honest worker's factors: ${shown}`);
    });
  }

  // A flipper alone has moved the model up the loss, so its next gradients no longer resemble
  // the ones the others' frozen directions were made of; its flipped pushes then point with
  // them. Judged against those directions alone it passed whole after a few such pushes (and on
  // mnist-mlp took 4 of 10 runs from 86-88% to 15-80% in their last evaluations,
  // bench:byzantine --full).
  test('a flipper alone whose flipped pushes come to point with the stale consensus gets no more than its record', () => {
    const push = swarm(60);
    // Alone: flipped pushes first, then (its gradient having turned) pushes that point with the
    // honest mean the others' frozen directions were made of.
    const factors = [...Array.from({ length: 20 }, () => push(true, 100)), ...Array.from({ length: 40 }, () => push(false, 100))];
    assert.ok(factors.every((x) => x < 0.1), `the lone flipper's factors: ${factors.map((x) => x.toFixed(2)).join(' ')}`);
  });

  // At the end of a run the honest workers finish one by one while the attackers push on: with
  // two flippers and two honest workers left, an honest worker's consensus was the median of the
  // other three, two of them the flippers', and it was cut (on mnist-mlp under a little is
  // enough, honest workers got a mean factor of 0.02-0.49 in their last 15 pushes). Each other
  // worker's vote in the consensus is its trust, so two flippers cut to a trust near 0 no longer
  // outvote two honest workers.
  test('two distrusted flippers left with two honest workers do not make the consensus', () => {
    const push = swarm(40);
    const honest: number[] = [];
    const flipped: number[] = [];
    for (let round = 0; round < 40; round++) {
      flipped.push(push(true, 100), push(true, 101));
      honest.push(push(false, 106), push(false, 107));
    }
    // (Plain median, 6 salts: honest mean 0.31-0.48; flippers' mean 0-0.034, single pushes up
    // to 0.32 through the trust margin.)
    const mean = honest.reduce((x, y) => x + y, 0) / honest.length;
    const flipMean = flipped.reduce((x, y) => x + y, 0) / flipped.length;
    assert.ok(flipMean < 0.1, `the flippers' factors: ${flipped.map((x) => x.toFixed(2)).join(' ')}`);
    assert.ok(mean > 0.9, `the honest workers' factors: ${honest.map((x) => x.toFixed(2)).join(' ')}`);
  });

  // Late in a run honest gradients are mostly noise, and that noise lives in few directions (a
  // per-push log of test/byzantine.test's mnist-logreg workers: honest cosines to the consensus
  // with a median of +0.03 to +0.14, a 5th percentile of -0.28 to -0.41). Judged on the bare
  // cosine at -0.1, four honest workers there were cut to nothing on 29% of their pushes, every
  // one a strike, and one became a repeat offender (24 of 32) mid-run. Here, over 30 salts, the
  // score at -0.15 keeps a mean factor of 0.78-0.87 and zeroes up to 9.5% of the pushes, of which
  // at most 28 of 1600 are strikes (the bare cosine at -0.1: 19-22% zeroed, all strikes).
  test('four honest workers whose gradients are mostly low-rank noise keep most of their steps and are seldom struck', () => {
    const n = 2000;
    const rank = 8;
    let x = 12345;
    const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const normal = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
    const unit = (v: Float32Array): Float32Array => {
      const norm = l2(v);
      return v.map((y) => y / norm);
    };
    const mean = unit(Float32Array.from({ length: n }, (_, i) => Math.cos(i)));
    const basis = Array.from({ length: rank }, () => unit(Float32Array.from({ length: n }, normal)));
    const a = createAggregator('clip', { ...AGGREGATOR_DEFAULTS, clipWindow: 32, clipWarmup: 1e9 }, n);
    let sum = 0;
    for (let round = 0; round < 400; round++) {
      for (let w = 0; w < 4; w++) {
        // The mean, and noise 6 times its norm in each of 8 fixed directions.
        const g = Float32Array.from(mean);
        for (const b of basis) {
          const z = 6 * normal();
          for (let i = 0; i < n; i++) g[i] = g[i]! + z * b[i]!;
        }
        const before = l2(g);
        sum += l2(a.admit(g, 1, undefined, 100 + w)!) / before;
      }
    }
    assert.ok(sum / 1600 >= 0.7, `the honest workers' mean factor ${(sum / 1600).toFixed(3)}`);
    const { directionZeroed } = a.stats();
    assert.ok(directionZeroed! <= 0.03 * 1600, `${directionZeroed} of 1600 honest pushes were strikes`);
  });

  test('off with --direction-tolerance 0: a sign-flipping worker within the radius is applied as it came', () => {
    const n = 500;
    const a = createAggregator('clip', { ...AGGREGATOR_DEFAULTS, clipWindow: 8, clipWarmup: 1e9, directionTolerance: 0 }, n);
    for (let i = 0; i < 64; i++) {
      const g = pseudo(1, n);
      if (i % 4 === 0) for (let j = 0; j < n; j++) g[j] = -g[j]!;
      const before = l2(g);
      assert.equal(l2(a.admit(g, 1, undefined, i % 4)!), before);
    }
    assert.equal(a.stats().directionLimited, 0);
  });
});
