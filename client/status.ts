/**
 * What a worker shows of itself: the status (the page, the Node worker's log lines and the
 * report to the PS read it) and the ledger, the record of acknowledged pushes and flushes
 * that tests compare with the PS's own records.
 */
import type { ConnectionState } from './connection.ts';
import type { Outgoing } from './state.ts';
import type { AckResult } from './transport.ts';

export interface FlushLogEntry {
  readonly workerId: number;
  readonly seq: number;
  readonly count: number;
  readonly baseVersion: number;
  readonly version: number;
  readonly duplicate: boolean;
  readonly at: number;
}

export interface WorkerStatus {
  state: ConnectionState;
  workerId: number;
  backend: string;
  /** Why this backend was chosen (client/backend.ts), reported to the PS. */
  backendReason?: string;
  model: string;
  bufferMode: string;
  steps: number;
  examplesPerSec: number;
  serverVersion: number;
  loss: number;
  shards: number[];
  examples: number;
  numTensors: number;
  /** Gradients in the buffer, and when buffering began (0 when not buffering). */
  buffered: number;
  bufferedSince: number;
  /** Gradients computed while the PS was unreachable, over the worker's life. */
  outageSteps: number;
  /** `local` mode: L2 distance of the worker's own weights from its last pulled copy (0 when frozen). */
  localDrift: number;
  /** The last flush acknowledged (the report sends it to the PS). */
  lastFlush: FlushLogEntry | undefined;
  restored: boolean;
  /** Gradients restored from storage when the page was reloaded during an outage. */
  restoredBuffered: number;
  lastError: string;
  /** The PS node this worker writes to (the chain's head in a cluster). */
  psUrl: string;
  /** Times the worker moved to another node of a cluster (a new head). */
  failovers: number;
  /** What the graceful stop drained and left; set once the worker stopped. */
  drain?: DrainReport;
  /** The push codec in use (shared/codec/), and why when it is not the one asked for. */
  codec?: string;
  /** Local steps per push (the run's; 1 = a push per step). */
  localSteps?: number;
  /** Bytes of push frames written to the PS (headers included), over the worker's life. */
  pushBytes?: number;
}

/**
 * A push still owed when the worker stopped: `undelivered` was never written to a socket (the
 * PS cannot have applied it); `unacknowledged` was, and its ack never came (the PS may have
 * applied it: its /api/flushes, or a chain's history, says whether).
 */
export interface LeftPush {
  readonly seq: number;
  readonly count: number;
  readonly flush: boolean;
  readonly state: 'undelivered' | 'unacknowledged';
}

/**
 * What a graceful stop (maxSteps, stop(), a signal) delivered before the worker exited, and
 * what it left: with these, a ledger of acknowledgements reconciles exactly with the PS's
 * version (every ack is one applied update; an `unacknowledged` push is the only doubt).
 */
export interface DrainReport {
  /** `drained`: nothing left; `timeout`: the drain timeout ran out; `aborted`: a second stop; `fatal`: a terminal error. */
  outcome: 'drained' | 'timeout' | 'aborted' | 'fatal';
  /** What was owed when the drain began: the outbox (if any) and the buffered gradients. */
  owed: { outbox: number | undefined; buffered: number };
  /** Acks the drain got, as the ledger has them: [seq, version, duplicate]. */
  acks: AckEntry[];
  /** Gradients the drain delivered (a push counts 1, a flush its count). */
  gradients: number;
  left: { outbox: LeftPush | undefined; buffered: number };
  ms: number;
}

export function initialStatus(backend: string, psUrl: string, backendReason?: string): WorkerStatus {
  return {
    state: 'joining', workerId: 0, backend, ...(backendReason ? { backendReason } : {}), model: '', bufferMode: '', steps: 0, examplesPerSec: 0,
    serverVersion: 0, loss: NaN, shards: [], examples: 0, numTensors: 0, buffered: 0, bufferedSince: 0,
    outageSteps: 0, localDrift: 0, lastFlush: undefined, restored: false, restoredBuffered: 0, lastError: '',
    psUrl, failovers: 0,
  };
}

/** Examples per second over windows of at least a second of steps. */
export class Throughput {
  private start = performance.now();
  private steps = 0;
  /** Counts a step of `batch` examples; returns the rate when a window closes, else undefined. */
  step(batch: number, now = performance.now()): number | undefined {
    this.steps += 1;
    if (now - this.start < 1000) return undefined;
    const rate = (this.steps * batch * 1000) / (now - this.start);
    this.start = now;
    this.steps = 0;
    return rate;
  }
}

/** One acknowledged push: [seq, version, duplicate ? 1 : 0]. */
export type AckEntry = [number, number, number];

/** Bounds of the ledger: it is for tests and operators, never unbounded per worker. */
export const LEDGER_MAX_ACKS = 200_000;
export const LEDGER_MAX_FLUSHES = 1000;

/**
 * Every flush acknowledged, in order (the oldest dropped past LEDGER_MAX_FLUSHES), and with
 * `logAcks` every acknowledged push (the oldest tenth dropped past LEDGER_MAX_ACKS). A reader
 * that drains `acks` (the Node worker's `--log-acks` lines) keeps it small.
 */
export class WorkerLedger {
  readonly acks: AckEntry[] = [];
  readonly flushes: FlushLogEntry[] = [];

  constructor(readonly logAcks: boolean) {}

  /** Records the ack of `out`; returns the flush entry when `out` was a flush. */
  record(workerId: number, out: Outgoing, ack: AckResult): FlushLogEntry | undefined {
    if (this.logAcks) {
      if (this.acks.length >= LEDGER_MAX_ACKS) this.acks.splice(0, LEDGER_MAX_ACKS / 10);
      this.acks.push([out.seq, ack.version, ack.duplicate ? 1 : 0]);
    }
    if (!out.flush) return undefined;
    const entry: FlushLogEntry = { workerId, seq: out.seq, count: out.count, baseVersion: out.baseVersion, version: ack.version, duplicate: ack.duplicate, at: Date.now() };
    if (this.flushes.length >= LEDGER_MAX_FLUSHES) this.flushes.shift();
    this.flushes.push(entry);
    return entry;
  }
}
