/**
 * The stateless parameter server: the PS persists nothing. Its weights, version and
 * applied-push record live in the workers, which hold the latest tagged WEIGHTS frame they were
 * sent. A (re)started PS holds all traffic, asks each connecting worker for its copy, verifies
 * every copy's HMAC tag (weights digest, version and record), and when the adoption window
 * closes adopts the highest verified version, record included, so no flush that copy already
 * contains is applied again. With no verified copy it starts fresh and says so.
 *
 * Phases: waiting (no worker yet) -> adopting (window open since the first worker connected)
 * -> serving. Offers after the window are counted as late and ignored.
 */
import { TabswarmError } from '../../shared/errors.ts';
import { hexOf } from '../../shared/signing.ts';
import { compose, type RecoveryStrategy, type StrategyContext, type WeightsOffer } from '../ps/strategy.ts';

export interface StatelessOptions {
  /** How long after the first worker connects to collect copies before adopting. @default 3000 */
  adoptWindowMs: number;
}

type Phase = 'waiting' | 'adopting' | 'serving';

export function stateless(opts: StatelessOptions): RecoveryStrategy {
  let ctx: StrategyContext | undefined;
  let phase: Phase = 'waiting';
  let best: { version: number; weights: Float32Array; record: WeightsOffer['record']; from: number } | undefined;
  let adopted: { version: number; from: number } | undefined;
  let fresh = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const offers = { verified: 0, rejected: 0, late: 0 };
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  const closeWindow = (): void => {
    if (phase === 'serving' || !ctx) return;
    phase = 'serving';
    const { store, log } = ctx;
    if (best) {
      store.restore({ layoutHash: store.layout.hash, version: best.version, weights: best.weights, velocity: new Float32Array(0), applied: new Map(best.record.map((r) => [r.workerId, { seq: r.seq, version: r.version }])) });
      adopted = { version: best.version, from: best.from };
      log.info({ version: best.version, from: best.from, records: best.record.length, offers }, 'stateless: adopted the highest verified copy of the weights');
      best = undefined;
    } else {
      fresh = true;
      log.warn({ offers }, 'stateless: no worker held a verified copy of the weights; starting fresh from the initial weights');
    }
    markReady();
  };

  // Durability: nothing is kept (the workers keep it); the context is what adoption restores into.
  const durability = {
    async start(c: StrategyContext) {
      ctx = c;
    },
    afterApply() {},
    durable() {},
    status: () => ({ durable: false, phase, adoptWindowMs: opts.adoptWindowMs, adopted: adopted ?? null, fresh, offers }),
    async stop() {
      if (timer) clearTimeout(timer);
      markReady();
    },
  };
  const bootstrap = {
    ready: () => ready,
    wantsWeights: () => phase !== 'serving',
    workerConnected() {
      if (phase !== 'waiting') return;
      phase = 'adopting';
      timer = setTimeout(closeWindow, opts.adoptWindowMs);
      timer.unref?.();
    },
    offer(o: WeightsOffer) {
      if (!ctx) throw new Error('stateless.offer: strategy not started');
      const { store, signer } = ctx;
      if (phase === 'serving') {
        offers.late += 1;
        return false;
      }
      if (!signer.verifyWeightsTag(o.tag, store.layout.hash, o.version, o.record, o.weightBytes)) {
        offers.rejected += 1;
        // The key id in clear names the refusal; the signature alone decided it (shared/signing.ts).
        if (signer.fromOtherKey(o.keyId)) {
          throw new TabswarmError('PS_OTHER_RUN', { version: o.version, got: hexOf(o.keyId), want: hexOf(signer.keyId), detail: `a copy from another run under the same secret, or from another deployment; this PS serves run ${signer.runId || '(none)'}` });
        }
        throw new TabswarmError('PS_FORGED_WEIGHTS', { version: o.version, detail: 'the tag does not verify under this run\'s key (forged or altered weights, version or record)' });
      }
      offers.verified += 1;
      if (!best || o.version > best.version) best = { version: o.version, weights: Float32Array.from(o.weights), record: [...o.record], from: o.workerId };
      return true;
    },
  };
  return compose('stateless', { durability, bootstrap });
}
