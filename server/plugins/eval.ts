/**
 * Periodic test-set evaluation (in a worker_thread, see eval/evaluator.ts) and the run's time
 * series, served at /api/series.
 */
import type { FastifyInstance } from 'fastify';
import type { SeriesResponse } from '../../shared/api.ts';
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
  app.get('/api/series', async (): Promise<SeriesResponse> => ({ model: options.model, dataset: options.dataset, points: series }));
  if (options.evalEveryMs === 0) return;

  const evaluator = new Evaluator({ model: options.model, test: dataset.test, pixelsPerExample: dataset.pixelsPerExample, examples: options.evalExamples });
  let lastVersion = -1;
  const tick = (): void => {
    // Nothing to evaluate while a stateless PS is still adopting the workers' weights.
    if (evaluator.busy || ps.store.version === lastVersion || ps.strategy.wantsWeights()) return;
    lastVersion = ps.store.version;
    const updates = ps.appliedCount;
    evaluator.evaluate(ps.store.version, ps.store.weights).then(
      (r) => {
        series.push({ ...r, t: (Date.now() - startedAt) / 1000, updates });
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
