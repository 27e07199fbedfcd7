/**
 * What a worker keeps so that a reload (or crash) during an outage loses at most one persist
 * interval: its identity (id and id tag, to rejoin a restarted PS under the same id), its push
 * sequence counter, the push it could not deliver, its gradient buffer, and its tagged copy of
 * the weights. Saved to IndexedDB in a tab (client/idb.ts), kept in memory in Node.
 */
import type { JoinResponse } from '../shared/api.ts';
import type { CodedPayload } from '../shared/protocol.ts';

/** An update that has a sequence number and must reach the PS exactly once. */
export interface Outgoing {
  readonly seq: number;
  readonly count: number;
  readonly baseVersion: number;
  /** What the PS will apply: the gradient, or what a lossy codec keeps of it (client/push-coder.ts). */
  readonly grad: Float32Array;
  readonly flush: boolean;
  /** The codec's payload, coded once when the update entered the outbox; absent for float32. */
  readonly coded?: CodedPayload;
}

export interface SavedState {
  /** The PS this state belongs to. */
  readonly baseUrl: string;
  /** The last join, without its session token (useless to a restarted PS). */
  readonly join: Omit<JoinResponse, 'token'>;
  /**
   * Push sequence numbers below this may have been used. Reserved in blocks before use, so a
   * restored worker never reuses a number the PS already recorded (it would be taken for a
   * duplicate and dropped).
   */
  readonly seqReserved: number;
  readonly outbox?: Outgoing;
  readonly buffer?: { sum: Float32Array; count: number; baseVersion: number; since: number };
  /** What a lossy push codec has left out so far (error feedback), owed with the buffer. */
  readonly residual?: Float32Array;
  readonly savedAt: number;
}

/** The small state is saved often; the tagged weights frame (model-sized) only when it changed. */
export interface StateStore {
  load(): Promise<SavedState | undefined>;
  save(state: SavedState): Promise<void>;
  loadTagged(): Promise<Uint8Array | undefined>;
  saveTagged(frame: Uint8Array): Promise<void>;
}

export class MemoryState implements StateStore {
  private state: SavedState | undefined;
  private tagged: Uint8Array | undefined;
  async load() {
    return this.state;
  }
  async save(state: SavedState) {
    this.state = state;
  }
  async loadTagged() {
    return this.tagged;
  }
  async saveTagged(frame: Uint8Array) {
    this.tagged = frame;
  }
}
