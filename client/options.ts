/**
 * What a host gives the worker loop (client/loop.ts) and the knobs it sets: the page
 * (client/main.ts) and the Node worker (client/node.ts) fill these in.
 */
import type { CodecName } from '../shared/codec/index.ts';
import type { Tf } from '../shared/forward.ts';
import type { ReconnectOptions } from './connection.ts';
import type { ShardCache } from './data.ts';
import type { WorkerMesh } from './mesh/index.ts';
import type { StateStore } from './state.ts';
import type { WorkerStatus } from './status.ts';
import type { SocketFactory } from './transport.ts';

export interface WorkerHost {
  readonly tf: Tf;
  /** Base URL of the PS, e.g. http://127.0.0.1:8080/ */
  readonly baseUrl: string;
  /** Name of the tfjs backend in use, for reports. */
  readonly backend: string;
  /** Why that backend (client/backend.ts), for reports. @default none */
  readonly backendReason?: string;
  readonly socket: SocketFactory;
  readonly cache: ShardCache;
  /** Where the worker keeps what must survive a reload. @default nothing is kept */
  readonly state?: StateStore;
  readonly fetch?: typeof fetch;
  readonly userAgent?: string;
  /** Called on every status change and after every step. */
  readonly onStatus?: (s: Readonly<WorkerStatus>) => void;
  /** Throws if this host cannot train the model (wasm + convolutions). */
  readonly checkModel?: (model: string) => void;
  /** Other workers, for gossip during outages and weight relay (client/mesh/). @default none */
  readonly mesh?: WorkerMesh;
}

export interface LoopOptions extends ReconnectOptions {
  /** Stop after this many steps. @default Infinity */
  maxSteps?: number;
  /** Seed of batch sampling. @default random */
  seed?: number;
  /** Request timeout on the socket and HTTP; no reply in time counts as an outage. @default 10000 */
  requestTimeoutMs?: number;
  /**
   * A graceful stop (maxSteps, stop(), a signal) first delivers the outbox and flushes the
   * buffer, waiting for the acks at most this long; what is left then is reported
   * (`status.drain`). Raise it when workers exit with `"outcome":"timeout"` against a PS that
   * was only slow to come back.
   * @default requestTimeoutMs + 5000
   */
  drainTimeoutMs?: number;
  /** How often to send the status report to the PS. @default 2000 */
  reportEveryMs?: number;
  /** How often the buffer is persisted during an outage (the most a reload can lose). @default 2000 */
  persistEveryMs?: number;
  /** Overrides the run's buffer mode. */
  bufferMode?: 'frozen' | 'local';
  /** Keep every acknowledged push (seq, version, duplicate) in `loop.ledger.acks` (tests). @default false */
  logAcks?: boolean;
  /**
   * How pushes travel (shared/codec/): `float32` (exact), `f16` (half the bytes), `int8`
   * (blockwise, about a quarter) or `topk` (the largest `topkRatio` of the values). The lossy
   * ones keep error feedback: what a push leaves out is added to the next. Falls back to float32
   * when the PS does not accept the codec (its join answer lists `codecs`). @default 'float32'
   */
  codec?: CodecName;
  /**
   * Compute the next gradient while the last push is in flight (one push in flight at most), so
   * upload and compute overlap; each gradient is then one push staler. @default false
   */
  overlap?: boolean;
  /** topk: the fraction of values each push keeps. @default 0.01 */
  topkRatio?: number;
  /** int8: values per scale. @default 256 */
  int8Block?: number;
  /** TEST ONLY: rewrites each push just before it is sent (client/attack.ts, `--attack`). @default none */
  attack?: import('./attack.ts').PushAttack;
}
