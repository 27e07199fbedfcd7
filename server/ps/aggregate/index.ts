/**
 * The aggregator registry (`--aggregator`, beside `--rule`). A missing entry is a compile error
 * (`satisfies Record<AggregatorName, ...>`); an unknown name is CONFIG_INVALID.
 *
 *   none           every push as is (the reference; one hostile push can ruin the model)
 *   clip           norm cut to c × the median of recent norms (the default: see README, "Threat model")
 *   centered-clip  deviation from a running center cut to c × its median (ICML 2021)
 *   trimmed-mean   coordinate-wise trimmed mean of bucket means over a window (ICLR 2022)
 */
import { TabswarmError } from '../../../shared/errors.ts';
import { centeredClip } from './centered-clip.ts';
import { clip } from './clip.ts';
import { trimmedMeanAggregator } from './trimmed-mean.ts';
import type { Aggregator, AggregatorOptions } from './types.ts';

export type { Aggregator, AggregatorOptions, AggregatorStats } from './types.ts';
export { AGGREGATOR_DEFAULTS } from './types.ts';

export const AGGREGATOR_NAMES = ['none', 'clip', 'centered-clip', 'trimmed-mean'] as const;
export type AggregatorName = (typeof AGGREGATOR_NAMES)[number];

/** The default, chosen by measurement (docs/benchmarks.md, "Byzantine workers"). */
export const DEFAULT_AGGREGATOR: AggregatorName = 'clip';

type Factory = (opts: AggregatorOptions, size: number) => Aggregator;

function none(): Aggregator {
  let admitted = 0;
  return {
    name: 'none',
    scales: false,
    admit(grad) {
      admitted += 1;
      return grad;
    },
    reset() {},
    stats: () => ({ clipped: 0, admitted, radius: 0 }),
  };
}

export const AGGREGATORS = {
  none: () => none(),
  clip: (opts) => clip(opts),
  'centered-clip': (opts, size) => centeredClip(opts, size),
  'trimmed-mean': (opts, size) => trimmedMeanAggregator(opts, size),
} as const satisfies Record<AggregatorName, Factory>;

export function createAggregator(name: string, opts: AggregatorOptions, size: number): Aggregator {
  if (!Object.hasOwn(AGGREGATORS, name)) {
    throw new TabswarmError('CONFIG_INVALID', { option: '--aggregator', detail: `unknown aggregator '${name}'; known: ${AGGREGATOR_NAMES.join(', ')}` });
  }
  if (name === 'trimmed-mean' && 2 * opts.trim >= opts.buckets) {
    throw new TabswarmError('CONFIG_INVALID', { option: '--trim', detail: `dropping ${opts.trim} at each end leaves none of ${opts.buckets} buckets` });
  }
  return AGGREGATORS[name as AggregatorName](opts, size);
}
