/**
 * Prometheus metrics, in a registry of the server's own (not prom-client's global one), so
 * several servers in one process (tests, benchmarks) do not collide.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tabswarm_process_' });
  return {
    registry,
    framesRejected: new Counter({
      name: 'tabswarm_frames_rejected_total',
      help: 'Frames and requests refused at the boundary, by error code',
      labelNames: ['reason', 'transport'] as const,
      registers: [registry],
    }),
    updatesApplied: new Counter({ name: 'tabswarm_updates_applied_total', help: 'Gradient pushes applied to the weights', registers: [registry] }),
    flushes: new Counter({ name: 'tabswarm_flushes_applied_total', help: 'Flushes of gradients buffered during an outage, applied', registers: [registry] }),
    duplicates: new Counter({ name: 'tabswarm_updates_duplicate_total', help: 'Pushes recognised as already applied and acknowledged again', registers: [registry] }),
    gradientBytes: new Counter({ name: 'tabswarm_gradient_bytes_total', help: 'Bytes of gradient frames received', registers: [registry] }),
    weightsBytesSent: new Counter({ name: 'tabswarm_weights_bytes_sent_total', help: 'Bytes of WEIGHTS frames sent to workers over the WebSocket (PS egress of weights)', registers: [registry] }),
    pushesClipped: new Counter({ name: 'tabswarm_pushes_clipped_total', help: 'Pushes whose size the robust aggregator cut (--aggregator clip, centered-clip)', registers: [registry] }),
    pushesDirectionLimited: new Counter({ name: 'tabswarm_pushes_direction_limited_total', help: 'Pushes clip cut because their worker kept pointing against the consensus of recent pushes (--direction-tolerance)', registers: [registry] }),
    pushesExcessLimited: new Counter({ name: 'tabswarm_pushes_excess_limited_total', help: 'Pushes clip cut further because their worker kept arriving past the clipping radius (--clip-memory)', registers: [registry] }),
    versionsRefused: new Counter({ name: 'tabswarm_versions_refused_total', help: 'New versions the output guard refused (non-finite, or a norm jump past --max-norm-jump); the last good weights stayed', registers: [registry] }),
    offenders: new Counter({ name: 'tabswarm_offenders_total', help: 'Sessions disconnected as repeat offenders (PS_OFFENDER), by the reason of the strike that tipped them: clipped, or the refusal code', labelNames: ['reason'] as const, registers: [registry] }),
    keptOut: new Gauge({ name: 'tabswarm_kept_out', help: 'Offenders whose worker id and address may not join now (--keep-out-ms)', registers: [registry] }),
    pulls: new Counter({ name: 'tabswarm_pulls_total', help: 'Weight pulls served', registers: [registry] }),
    modelVersion: new Gauge({ name: 'tabswarm_model_version', help: 'Current model version', registers: [registry] }),
    workers: new Gauge({ name: 'tabswarm_workers', help: 'Joined workers, by state', labelNames: ['state'] as const, registers: [registry] }),
    staleness: new Histogram({
      name: 'tabswarm_update_staleness',
      help: 'Versions between the weights a gradient was computed on and the version it was applied to',
      buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128],
      registers: [registry],
    }),
    applySeconds: new Histogram({
      name: 'tabswarm_apply_seconds',
      help: 'Time to decode, validate and apply one push',
      buckets: [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1],
      registers: [registry],
    }),
    evalAccuracy: new Gauge({ name: 'tabswarm_eval_accuracy', help: 'Test accuracy at the last evaluation', registers: [registry] }),
    evalLoss: new Gauge({ name: 'tabswarm_eval_loss', help: 'Test loss at the last evaluation', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
