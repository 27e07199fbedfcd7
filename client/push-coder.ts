/**
 * The worker's push codec (shared/codec/): each update is coded once, when it enters the
 * outbox, with error feedback for a lossy codec, so that a resend after a lost ack carries the
 * same bytes under the same sequence number and the residual is counted once. The residual is
 * persisted by the journal with the outage buffer, and dropped when the worker rejoins fresh
 * (what it owed went with the old id).
 */
import { CODECS, Codec, ErrorFeedback, type CodecName, type EncodeOptions } from '../shared/codec/index.ts';
import type { Outgoing } from './state.ts';

export class PushCoder {
  private readonly feedback: ErrorFeedback;

  constructor(
    readonly name: CodecName,
    opts: EncodeOptions = {},
  ) {
    this.feedback = new ErrorFeedback(CODECS[name], opts);
  }

  /** `out` coded: `grad` becomes what the PS will apply, `coded` the payload to send. */
  code(out: Outgoing): Outgoing {
    if (this.name === 'float32') return out;
    const { payload, sent } = this.feedback.compress(out.grad);
    return { ...out, grad: sent, coded: { dtype: Codec[this.name], bytes: payload, values: sent.length } };
  }

  /** What earlier pushes left out (undefined for float32, or before the first push). */
  get residual(): Float32Array | undefined {
    return this.feedback.residual;
  }

  /** Takes over a residual the journal restored (ignored if it does not fit the layout). */
  restore(residual: Float32Array | undefined, layoutSize: number): void {
    this.feedback.residual = residual && residual.length === layoutSize && this.name !== 'float32' ? residual : undefined;
  }

  reset(): void {
    this.feedback.reset();
  }
}
