/**
 * Periodic test-set evaluation (in a worker_thread, see eval/evaluator.ts) and the run's time
 * series, served at /api/series from the first evaluation on (the worker page's chart and the
 * admin console read it; `?since=T` answers only the newer points). The series keeps at most
 * MAX_POINTS: past that, every other old point is dropped, so a long run keeps its shape.
 *
 * Evaluation must not take the workers' CPU (on a small machine the tabs run on the same
 * cores): after an evaluation that took E ms the next one waits at least E / MAX_DUTY, so the
 * evaluation thread is busy at most MAX_DUTY of one core whatever --eval-every says. Measured
 * in docs/benchmarks.md ("A newcomer's first minute").
 */
import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { SeriesQuerySchema, type SeriesResponse } from '../../shared/api.ts';
import type { ResolvedOptions } from '../config.ts';
import type { Dataset } from '../data.ts';
import { Evaluator, type SeriesPoint } from '../eval/evaluator.ts';
import type { ParameterServer } from '../ps/service.ts';

export async function evalPlugin(app: FastifyInstance, opts: { ps: ParameterServer; dataset: Dataset; options: ResolvedOptions }): Promise<void> {
  const { ps, dataset, options } = opts;
  const series: SeriesPoint[] = [];
  const startedAt = Date.now();
  // No response schema: a diverged run's NaN loss would make the serializer throw (500), where
  // JSON.stringify writes null.
  app.get('/api/series', { schema: { querystring: SeriesQuerySchema } }, async (request): Promise<SeriesResponse> => {
    const since = Number((request.query as Static<typeof SeriesQuerySchema>).since ?? -Infinity);
    return { model: options.model, dataset: options.dataset, startedAt, points: since === -Infinity ? series : series.filter((p) => p.t > since) };
  });
  if (options.evalEveryMs === 0) return;

  const evaluator = new Evaluator({ model: options.model, test: dataset.test, pixelsPerExample: dataset.pixelsPerExample, examples: options.evalExamples });
  let lastVersion = -1;
  let notBefore = 0;
  const tick = (): void => {
    // Nothing to evaluate while a stateless PS is still adopting the workers' weights.
    if (evaluator.busy || ps.store.version === lastVersion || ps.strategy.wantsWeights() || Date.now() < notBefore) return;
    lastVersion = ps.store.version;
    const updates = ps.appliedCount;
    evaluator.evaluate(ps.store.version, ps.store.weights).then(
      (r) => {
        notBefore = Date.now() + r.ms * (1 / MAX_DUTY - 1);
        series.push({ ...r, t: (Date.now() - startedAt) / 1000, updates });
        if (series.length > MAX_POINTS) thin(series);
        ps.metrics.evalAccuracy.set(r.accuracy);
        ps.metrics.evalLoss.set(r.loss);
        app.log.info({ version: r.version, accuracy: Number(r.accuracy.toFixed(4)), loss: Number(r.loss.toFixed(4)), ms: Math.round(r.ms) }, 'evaluation');
      },
      (err: Error) => app.log.warn({ err: err.message }, 'evaluation failed'),
    );
  };
  const timer = setInterval(tick, options.evalEveryMs);
  timer.unref();
  app.addHook('onReady', async () => tick());
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await evaluator.close();
  });
}

/** The most of one core the evaluation thread may keep busy (see above). */
export const MAX_DUTY = 0.2;

/** Evaluations kept; at 5 s a period that is 5.7 h before the first thinning. */
export const MAX_POINTS = 4096;

/** Halves the older half of the series (every other point), keeping the first and the recent half whole. */
function thin(series: SeriesPoint[]): void {
  const half = Math.floor(series.length / 2);
  const older = series.slice(1, half).filter((_, i) => i % 2 === 1);
  series.splice(1, half - 1, ...older);
}
