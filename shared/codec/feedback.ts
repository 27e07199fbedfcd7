/**
 * Error feedback for a lossy push codec (the worker's side): what a push leaves out is kept and
 * added to the next one, so over many pushes the PS receives the true sum within the size of one
 * residual. The residual is part of what the worker owes: it is persisted with the outage buffer
 * (client/journal.ts) and dropped with it when the worker rejoins fresh.
 */
import type { CodecImpl, EncodeOptions } from './types.ts';

export interface Compressed {
  /** The payload to send (the codec's bytes). */
  readonly payload: Uint8Array;
  /** What the PS will apply: decode(payload). */
  readonly sent: Float32Array;
}

export class ErrorFeedback {
  /** What earlier pushes left out; undefined until a lossy push happened. */
  residual: Float32Array | undefined;

  constructor(
    readonly codec: CodecImpl,
    readonly opts: EncodeOptions = {},
  ) {}

  /** Encodes grad + residual; the residual becomes what this payload leaves out. */
  compress(grad: Float32Array): Compressed {
    if (!this.codec.lossy) return { payload: this.codec.encode(grad, this.opts), sent: grad };
    const x = Float32Array.from(grad);
    const r = this.residual;
    if (r && r.length === x.length) for (let i = 0; i < x.length; i++) x[i] = x[i]! + r[i]!;
    const payload = this.codec.encode(x, this.opts);
    const sent = this.codec.decode(payload, x.length);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! - sent[i]!;
    this.residual = x;
    return { payload, sent };
  }

  /** Forgets the residual (a fresh session: what it owed is gone with the old one). */
  reset(): void {
    this.residual = undefined;
  }
}
