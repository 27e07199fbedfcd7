/**
 * The drain of a worker that stops (maxSteps, stop(), a signal in the Node worker): it delivers
 * what the worker owes, the outbox under its sequence number and then the buffer as one flush,
 * through the same connection path as a recovery (reconnecting, relocating to a new head), until
 * nothing is owed, the drain timeout passes, a second stop comes, or an error is fatal. Every
 * wait races the deadline: a request in flight when it passes is abandoned, and its push
 * reported as left (unacknowledged). The report then reconciles the worker's acks with the PS's
 * version exactly: every ack is one applied update, an `unacknowledged` push the only doubt.
 */
import type { WorkerConnection, ConnectionState } from './connection.ts';
import type { Outage } from './outage.ts';
import type { Outgoing } from './state.ts';
import type { DrainReport } from './status.ts';
import type { AckResult, WsTransport } from './transport.ts';

export interface DrainHooks {
  readonly outage: Outage;
  readonly connection: WorkerConnection;
  /** One delivery attempt over an open connection: the outbox, then the buffer. */
  flush(transport: WsTransport): Promise<void>;
  /** Resolves on a second stop; `aborted()` says whether it came. */
  readonly aborting: Promise<void>;
  aborted(): boolean;
  setState(state: ConnectionState): void;
}

export class Drain {
  readonly report: DrainReport;
  private finished = false;

  constructor(private readonly h: DrainHooks, private readonly timeoutMs: number) {
    this.report = { outcome: 'drained', owed: { outbox: h.outage.outbox?.seq, buffered: h.outage.buffer.count }, acks: [], gradients: 0, left: { outbox: undefined, buffered: 0 }, ms: 0 };
  }

  /** The report is written: acks that still arrive are not counted, so `left` stays exact. */
  get done(): boolean {
    return this.finished;
  }

  /** An ack that arrived while draining. */
  acked(out: Outgoing, ack: AckResult): void {
    if (this.finished) return;
    this.report.acks.push([out.seq, ack.version, ack.duplicate ? 1 : 0]);
    this.report.gradients += out.count;
  }

  async run(): Promise<DrainReport> {
    const { outage, connection } = this.h;
    const report = this.report;
    const started = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.timeoutMs)));
    const ended = Promise.race([expired, this.h.aborting.then(() => 'aborted' as const)]);
    let end: 'timeout' | 'aborted' | undefined;
    void ended.then((e) => (end = e));
    if (outage.owed) this.h.setState('draining');
    try {
      while (outage.owed && !end && !this.h.aborted()) {
        if (connection.fatal) {
          report.outcome = 'fatal';
          break;
        }
        connection.maybeConnect();
        const transport = connection.transport;
        await Promise.race([connection.connected && transport ? this.h.flush(transport) : connection.settle(), ended]);
      }
    } finally {
      clearTimeout(timer);
    }
    this.finished = true;
    if (outage.owed && report.outcome !== 'fatal') report.outcome = this.h.aborted() ? 'aborted' : 'timeout';
    const out = outage.outbox;
    report.left = {
      outbox: out && { seq: out.seq, count: out.count, flush: out.flush, state: outage.outboxSent ? 'unacknowledged' : 'undelivered' },
      buffered: outage.buffer.count,
    };
    report.ms = Date.now() - started;
    return report;
  }
}
