/**
 * What survives a reload (or a crash) of the worker: its identity, the push sequence counter,
 * the outbox, the gradient buffer (with a lossy codec's residual) and its tagged copy of the weights, in the host's StateStore
 * (IndexedDB in a tab, client/idb.ts; memory in Node). A reload during an outage loses at most
 * one persist interval of gradients and never reuses a sequence number.
 *
 * Sequence numbers are reserved in blocks of SEQ_BLOCK and the reservation is saved before the
 * first number of a block is used: a restored worker starts above anything it may have sent,
 * so the PS never takes a new push for a duplicate of an old one and drops it.
 */
import type { GradientBuffer } from './buffer.ts';
import type { Identity } from './session.ts';
import type { Outgoing, SavedState, StateStore } from './state.ts';

export const SEQ_BLOCK = 10_000;

/** What the journal saves, read from the loop's parts at each save. */
export interface JournalSnapshot {
  readonly join: Identity | undefined;
  readonly outbox: Outgoing | undefined;
  readonly buffer: GradientBuffer;
  /** The latest tagged WEIGHTS frame; saved only while disconnected (the PS holds the weights otherwise). */
  readonly tagged: Uint8Array | undefined;
  readonly connected: boolean;
  /** The push codec's error-feedback residual (client/push-coder.ts). */
  readonly residual?: Float32Array | undefined;
}

export interface Restored {
  readonly saved: SavedState;
  readonly tagged: Uint8Array | undefined;
}

export class Journal {
  /** The last sequence number used. */
  private seq = 0;
  private seqReserved = 0;
  private lastPersist = 0;
  /** The tagged frame the store holds (by identity: a new frame is a new array). */
  private savedTagged: Uint8Array | undefined;

  constructor(
    private readonly store: StateStore | undefined,
    /** The PS the state belongs to: a store saved for another PS is not restored. */
    private readonly baseUrl: string,
    /** The most a reload during an outage can lose. @default 2000 */
    private readonly persistEveryMs: number,
    private readonly snapshot: () => JournalSnapshot,
  ) {}

  /** What an earlier page of this tab saved for this PS, and its sequence reservation taken over. */
  async restore(): Promise<Restored | undefined> {
    const saved = await this.store?.load();
    if (!this.store || !saved || saved.baseUrl !== this.baseUrl) return undefined;
    this.seq = this.seqReserved = saved.seqReserved;
    const tagged = await this.store.loadTagged();
    this.savedTagged = tagged;
    return { saved, tagged };
  }

  /** The PS says it applied pushes up to `lastSeq` for this id: never reuse those. */
  observe(lastSeq: number): void {
    this.seq = Math.max(this.seq, lastSeq);
  }

  /** The next sequence number, its block reserved (and saved) first when needed. */
  async nextSeq(): Promise<number> {
    if (this.seq + 1 >= this.seqReserved) {
      this.seqReserved = this.seq + 1 + SEQ_BLOCK;
      await this.persist(true);
    }
    return ++this.seq;
  }

  /** Saves the small state (every persistEveryMs, or now when forced) and the tagged weights when changed, during outages. */
  async persist(force: boolean): Promise<void> {
    const store = this.store;
    const s = this.snapshot();
    if (!store || !s.join) return;
    const now = Date.now();
    if (!force && now - this.lastPersist < this.persistEveryMs) return;
    this.lastPersist = now;
    const buffer = s.buffer;
    await store.save({
      baseUrl: this.baseUrl,
      join: s.join,
      seqReserved: Math.max(this.seqReserved, this.seq),
      ...(s.outbox ? { outbox: s.outbox } : {}),
      ...(buffer.count > 0 ? { buffer: { sum: buffer.sum, count: buffer.count, baseVersion: buffer.baseVersion, since: buffer.since } } : {}),
      ...(s.residual ? { residual: s.residual } : {}),
      savedAt: now,
    });
    if (!s.connected && s.tagged && s.tagged !== this.savedTagged) {
      this.savedTagged = s.tagged;
      await store.saveTagged(s.tagged);
    }
  }
}
