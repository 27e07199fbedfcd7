/**
 * The options of `tabswarm start` (the embedded PS), `tabswarm node` (a chain node: the same plus
 * the chain's) and `tabswarm worker`, each declared once (server/options/schema.ts). config.ts
 * takes its DEFAULTS and its checks from PS_OPTIONS; server/cli.ts its parsing and help.
 * Keys are the ServerOptions fields (server/config.ts), flags their kebab-case unless named.
 */
import { CODEC_NAMES } from '../../shared/codec/index.ts';
import { MODEL_NAMES } from '../../shared/models.ts';
import { DATASET_NAMES } from '../data.ts';
import { AGGREGATOR_DEFAULTS as A, AGGREGATOR_NAMES, DEFAULT_AGGREGATOR } from '../ps/aggregate/index.ts';
import { RULE_NAMES } from '../ps/rules.ts';
import { CHECKPOINT_DEFAULTS, CHECKPOINT_MODES, RECOVERY_MODES } from '../strategies/checkpoint/options.ts';
import { STRATEGY_NAMES } from '../strategies/index.ts';
import { defineOptions } from './schema.ts';

export const BACKENDS = ['auto', 'webgpu', 'webgl', 'wasm', 'cpu'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** `start`'s log (server/start/logger.ts) and what runs its --workers (server/start/workers.ts). */
export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export const WORKER_RUNTIMES = ['auto', 'chromium', 'node'] as const;
const ON_OFF = ['on', 'off'] as const;
const C = CHECKPOINT_DEFAULTS;

/** The embedded parameter server's options (ServerOptions), shared by `start` and `node`. */
export const PS_OPTIONS = defineOptions({
  model: { type: 'choice', values: MODEL_NAMES, default: 'fashion-cnn', help: 'model from the registry (shared/models.ts)' },
  dataset: { type: 'choice', values: DATASET_NAMES, default: 'mnist', help: 'training and test data' },
  shards: { type: 'int', min: 1, default: 16, help: 'disjoint training shards handed out to workers' },
  lr: { type: 'number', min: 0, exclusive: 'min', arg: 'X', defaultText: "the model's: 0.1 for mnist-mlp, 0.01 for fashion-cnn", help: 'SGD learning rate', symptom: 'loss diverges (lower it) or creeps (raise it)' },
  momentum: { type: 'number', min: 0, max: 1, exclusive: 'max', arg: 'X', default: 0, help: 'SGD momentum' },
  batch: { type: 'int', min: 1, defaultText: "the model's: 64 for mnist-mlp, 32 for fashion-cnn", help: 'worker batch size' },
  pullEvery: { type: 'int', min: 1, default: 1, help: 'workers pull weights every N steps', symptom: 'pull traffic dominates the PS (raise it, at the cost of staler gradients)' },
  seed: { type: 'int', min: 0, default: 1, help: 'seed of the initial weights and the shard split' },
  evalEveryMs: { flag: 'eval-every', type: 'int', min: 0, arg: 'MS', default: 5000, help: 'test-set evaluation period, 0 = off', symptom: 'evaluation slows a small machine (raise it or 0)' },
  evalExamples: { type: 'int', min: 1, default: 10000, help: 'evaluate on the first N test examples' },
  idleMs: { type: 'int', min: 100, arg: 'MS', default: 30000, help: 'drop a worker silent this long and reassign its shards', symptom: 'shards of closed tabs stay idle too long (lower it) or slow tabs lose theirs (raise it)' },
  maxWorkers: { type: 'int', min: 1, default: 1024, help: 'most concurrent workers', symptom: 'WORKERS_FULL refuses volunteers the machine could serve' },
  joinRate: { type: 'int', min: 0, arg: 'N', default: 120, help: 'joins one address may make per minute, 0 = no limit (PS_RATE_LIMITED, 429 with Retry-After)', symptom: 'one client looping joins slows the PS (lower it) or a lab behind one NAT is refused (raise it)' },
  maxSessionsPerAddress: { flag: 'sessions-per-address', type: 'int', min: 0, arg: 'N', default: 64, help: 'live worker sessions one address may hold, 0 = no limit (PS_TOO_MANY_SESSIONS)', symptom: 'one client hoards the --max-workers slots (lower it) or many tabs behind one NAT are refused (raise it)' },
  refusalDelayMs: { type: 'int', min: 0, arg: 'MS', default: 1000, help: 'answer a join refused for its rate (PS_RATE_LIMITED) after this long, at most 1024 held at once, 0 = at once', symptom: 'a client looping joins still slows the PS (raise it)' },
  trustProxy: { type: 'string', arg: 'P', default: 'off', help: 'behind a reverse proxy: take the client address from X-Forwarded-For; on = trust every hop, N = trust N hops, or a comma list of proxy addresses/CIDRs', symptom: 'every worker shares the proxy\'s address and the per-address limits refuse them all' },
  corsOrigin: { type: 'string', arg: 'ORIGINS', default: '', help: 'other origins whose pages may call /api/* (comma list, or *); the PS\'s own origin always may. A chain node also allows its chain\'s nodes', symptom: 'a worker page served from another site cannot join' },
  wsPingMs: { type: 'int', min: 0, arg: 'MS', default: 10000, help: 'ping every worker socket this often; one without a pong by the next ping is dropped and its session expired, 0 = off', symptom: 'half-open sockets of vanished tabs hold slots (lower it)' },
  workIdleMs: { type: 'int', min: 0, arg: 'MS', default: 120000, help: 'end a session whose socket carries no push or pull for this long (PS_NO_WORK), 0 = off', symptom: 'idle sockets hold --max-workers slots (lower it) or slow CPU tabs lose their session between steps (raise it)' },
  maxQueuedBytes: { type: 'int', min: 65536, arg: 'B', default: 16777216, help: 'bytes of unsent replies one worker socket may queue before it is closed (PS_SLOW_READER)', symptom: 'the PS\'s memory grows with clients that do not read' },
  requestTimeoutMs: { type: 'int', min: 0, arg: 'MS', default: 30000, help: 'an HTTP request (headers and body) must arrive within this, 0 = off', symptom: 'slow uploads hold the server (lower it) or big pushes on slow links fail (raise it)' },
  connectionTimeoutMs: { type: 'int', min: 0, arg: 'MS', default: 60000, help: 'close an HTTP connection idle this long (not upgraded WebSockets), 0 = off' },
  recordHorizon: { type: 'int', min: 1, arg: 'V', default: 1000000, help: 'the applied-push record forgets a worker whose last push is more than V versions old (PS_RECORD_EXPIRED when it returns)', symptom: 'workers returning from long outages lose their buffered gradients (raise it)' },
  recordMax: { type: 'int', min: 1, max: 65535, arg: 'N', default: 65535, help: 'most workers the applied-push record holds; the oldest are forgotten first (the protocol carries at most 65,536 entries)' },
  strategy: { type: 'choice', values: STRATEGY_NAMES, default: 'none', help: 'recovery strategy (server/strategies)', symptom: 'a PS crash loses training (checkpoint) or must be survived without disk (stateless)' },
  rule: { type: 'choice', values: RULE_NAMES, default: 'mean', help: 'stale-update rule (server/ps/rules.ts)', symptom: 'accuracy drops after outages because stale buffered gradients dominate (staleness)' },
  aggregator: { type: 'choice', values: AGGREGATOR_NAMES, default: DEFAULT_AGGREGATOR, help: 'robust aggregation of pushes before the optimizer (server/ps/aggregate; README "Threat model")', symptom: 'one hostile or broken worker ruins the model (clip); none only for trusted workers' },
  clipFactor: { type: 'number', min: 0, exclusive: 'min', arg: 'C', default: A.clipFactor, help: 'clip, centered-clip: radius = C x the median norm of recent pushes', symptom: 'honest pushes are clipped often (raise it) or an attacker still drags accuracy (lower it)' },
  clipWindow: { type: 'int', min: 1, max: 4096, arg: 'K', default: A.clipWindow, help: 'clip, centered-clip: the median is over the last K accepted pushes' },
  directionTolerance: { type: 'number', min: 0, arg: 'T', default: A.directionTolerance, help: 'clip: cut a worker whose running direction keeps pointing against the consensus of recent pushes (a running cosine of -T or below: nothing applied; linear up to 0), 0 = off', symptom: 'an attacker within the clipping radius still drags accuracy (raise it) or honest workers are cut (lower it, or 0)' },
  clipMemory: { type: 'number', min: 0, max: 1, exclusive: 'max', arg: 'B', default: A.clipMemory, help: 'clip: a worker whose pushes keep arriving past the radius gets a smaller one: the radius over exp of its running log excess, old value weighted B (server/ps/aggregate/excess.ts), 0 = off', symptom: 'a broken or noisy worker far past the radius still drags accuracy (raise it towards 1: a longer memory)' },
  clipWarmup: { type: 'number', min: 0, exclusive: 'min', arg: 'X', default: A.clipWarmup, help: 'clip, centered-clip: absolute radius until K pushes were seen', symptom: 'the first steps are too timid (raise it)' },
  bucketSize: { type: 'int', min: 1, arg: 'S', default: A.bucketSize, help: 'trimmed-mean: pushes averaged per bucket' },
  buckets: { type: 'int', min: 1, arg: 'B', default: A.buckets, help: 'trimmed-mean: buckets per window, one update per window' },
  trim: { type: 'int', min: 0, default: A.trim, help: 'trimmed-mean: bucket means dropped at each end per coordinate, (B-1)/2 = median', symptom: 'more attackers than trim x bucket size (raise it)' },
  maxNormJump: { type: 'number', min: 0, arg: 'X', default: 2, help: 'refuse a new version whose weight norm exceeds X times the current one (floor 1), 0 = off; non-finite versions are always refused' },
  localSteps: { type: 'int', min: 1, arg: 'H', default: 1, help: 'workers take H steps on their own copy (at --lr) and push their sum as one update, which the PS applies with Nesterov SGD at --outer-lr and --outer-momentum (DiLoCo); outages flush the same way, so outage compute counts in full. 1 = a push per step', symptom: 'uploads or round trips dominate the step time (raise it, at some cost in staleness)' },
  outerLr: { type: 'number', min: 0, exclusive: 'min', arg: 'X', default: 1, help: '--local-steps > 1: the outer learning rate (on the model delta, inner lr x the summed gradients); 1 with momentum 0 is local SGD', symptom: 'DiLoCo\'s 0.7 with momentum 0.9 suits H in the hundreds; at small H it overshoots (measured: mnist-mlp at H = 4 did not learn)' },
  outerMomentum: { type: 'number', min: 0, max: 1, exclusive: 'max', arg: 'X', default: 0, help: '--local-steps > 1: the outer Nesterov momentum' },
  codecs: { type: 'list', of: 'string', values: CODEC_NAMES, default: [...CODEC_NAMES], help: 'push codecs workers may use (shared/codec/; listed in /api/model and the join answer); float32 is always accepted', symptom: 'a lossy codec costs the run accuracy you cannot spare (leave only float32)' },
  maxCount: { type: 'int', min: 1, default: 100000, help: 'most gradients one push or flush may claim (PS_COUNT_TOO_LARGE)', symptom: 'honest flushes after long outages are refused (raise it)' },
  maxCountRate: { type: 'number', min: 0, exclusive: 'min', arg: 'R', default: 1000, help: 'a worker earns a credit of R gradients per second (8x its measured rate when lower, never past --max-count) that its pushes and flushes spend, besides --max-count (PS_COUNT_TOO_LARGE)', symptom: 'honest flushes of very fast workers are refused (raise it)' },
  pushRate: { type: 'number', min: 0, arg: 'N', default: 0, help: 'pushes one session may make per second, a burst of one second\'s worth, 0 = no limit (PS_PUSH_RATE, retryable)', symptom: 'one worker floods the PS with pushes' },
  pushesInFlight: { type: 'int', min: 0, arg: 'N', default: 16, help: 'pushes one session may have sent and not had answered, 0 = no limit (PS_PUSHES_IN_FLIGHT, retryable)' },
  offenderStrikes: { type: 'int', min: 0, arg: 'S', default: 24, help: 'disconnect a session with S clipped or refused pushes among its last --offender-window (PS_OFFENDER) and keep it out for --keep-out-ms, 0 = never', symptom: 'honest workers are disconnected as offenders (raise it) or a hostile one stays (lower it)' },
  offenderWindow: { type: 'int', min: 1, max: 4096, arg: 'W', default: 32, help: 'pushes the offender strikes are counted over' },
  keepOutMs: { type: 'int', min: 0, arg: 'MS', default: 300000, help: 'how long an offender\'s worker id and address may not join again (PS_KEPT_OUT)', symptom: 'one offender behind a NAT keeps its neighbours out (lower it)' },
  secret: { type: 'string', minLength: 16, arg: 'S', defaultText: 'env TABSWARM_SECRET, else random: then nothing workers hold survives a restart', help: 'HMAC secret shared by all PS processes of a deployment' },
  runId: { type: 'string', arg: 'ID', defaultText: 'none (a cluster fixes its own when created)', help: 'the run this PS serves, part of the weights signing key: copies from another run under the same secret are refused', symptom: 'a restarted stateless PS or the mesh takes weights left over from an earlier run (give each run its own)' },
  adminToken: { type: 'string', minLength: 16, arg: 'T', defaultText: 'env TABSWARM_ADMIN_TOKEN, else random, printed', help: 'bearer token of /api/admin/*' },
  adoptWindowMs: { type: 'int', min: 0, arg: 'MS', default: 3500, help: 'stateless: collect workers\' weight copies this long before adopting', symptom: 'a restarted stateless PS adopts an old copy before the freshest worker reconnects (raise it)' },
  bufferMode: { type: 'choice', values: ['frozen', 'local'], default: 'frozen', help: 'while the PS is down workers sum gradients against their last weights (frozen) or also apply them locally (local)' },
  meshPeers: { type: 'int', min: 0, arg: 'K', default: 3, help: 'worker mesh: data channels each worker keeps to other workers, 0 = no mesh' },
  meshPort: { type: 'int', min: 0, max: 65535, default: 0, help: 'port of the mesh\'s PeerJS signaling server, 0 = a free one (see /api/mesh)' },
  gossipEveryMs: { type: 'int', min: 0, arg: 'MS', default: 2000, help: 'local buffer mode: average weights with a peer every T ms during outages, 0 = off' },
  relay: { type: 'choice', values: ON_OFF, default: 'off', help: 'while the PS is up, take signed weights from peers before pulling', symptom: 'pulls saturate the PS\'s uplink' },
  relayMaxLag: { type: 'int', min: 0, default: 8, help: 'relay: accept a peer\'s weights at most N versions behind the last ack' },
  checkpointMode: { type: 'choice', values: CHECKPOINT_MODES, default: C.checkpointMode, help: 'checkpoint: stop applying while writing (sync) or copy and write in the background (async)', symptom: 'applies stall while a checkpoint is written (async)' },
  checkpointEvery: { type: 'int', min: 0, default: C.checkpointEvery, help: 'checkpoint every N applied updates, 0 = not by count', symptom: 'a crash loses too many updates (lower it) or writes slow the PS (raise it)' },
  checkpointEveryMs: { type: 'int', min: 0, arg: 'MS', default: C.checkpointEveryMs, help: 'also once T ms have passed since the last checkpoint, 0 = off' },
  checkpointDir: { type: 'string', minLength: 1, arg: 'DIR', default: C.checkpointDir, help: 'where the checkpoint streams live, one folder per PS shard' },
  checkpointKeep: { type: 'int', min: 1, default: C.checkpointKeep, help: 'full checkpoints kept per PS shard' },
  checkpointBlock: { type: 'int', min: 1, arg: 'B', default: C.checkpointBlock, help: 'values per block, the unit of prioritized checkpoints' },
  checkpointFullEvery: { type: 'int', min: 0, arg: 'C', default: C.checkpointFullEvery, help: 'with --priority-fraction < 1, every C-th checkpoint is full, 0 = only the first', symptom: 'restores read too many partial checkpoints (lower it)' },
  psShards: { type: 'int', min: 1, arg: 'S', default: C.psShards, help: 'key-range shards of the PS state, each with its own checkpoint stream' },
  priorityFraction: { type: 'number', min: 0, max: 1, exclusive: 'min', arg: 'R', default: C.priorityFraction, help: 'prioritized checkpoints save the fraction R of blocks that changed most, 1 = full', symptom: 'full checkpoints take too long to write (e.g. 0.25)' },
  recovery: { type: 'choice', values: RECOVERY_MODES, default: C.recovery, help: 'after a lost PS shard: restore that shard only (partial) or roll back all (full)' },
});

/** What `start` adds: where to listen, the launched tabs, the log. */
export const START_OPTIONS = defineOptions({
  port: { type: 'int', min: 0, max: 65535, default: 8080, help: 'port to listen on, 0 picks a free one' },
  host: { type: 'string', arg: 'H', default: '127.0.0.1', help: 'address to bind; 0.0.0.0 lets other machines join' },
  ...PS_OPTIONS,
  // The newcomer's default: mnist-mlp passes 90% test accuracy within a minute on 2 CPU cores
  // (docs/benchmarks.md). The reference workload is `--model fashion-cnn --dataset fashion-mnist`;
  // buildServer({}) and `tabswarm node` keep fashion-cnn.
  model: { ...PS_OPTIONS.model, default: 'mnist-mlp', help: 'model from the registry (shared/models.ts); the reference workload is --model fashion-cnn --dataset fashion-mnist' },
  workers: { type: 'int', min: 0, default: 2, help: 'headless Chromium worker tabs to launch, 0 = none' },
  workerBackend: { type: 'choice', values: BACKENDS, default: 'auto', help: 'backend of those tabs' },
  workerRuntime: { type: 'choice', values: WORKER_RUNTIMES, default: 'auto', help: 'what runs the --workers: Chromium tabs (chromium), headless Node processes on the tfjs cpu backend (node), or tabs when Chromium is there and Node workers otherwise, said in one line (auto); env TABSWARM_NO_BROWSER=1 means node', symptom: 'no browser on the machine, or a browser that fails to start (node)' },
  installDeps: { type: 'choice', values: ['auto', 'off'], default: 'auto', help: 'as root, apt-get install what start is missing (chromium; dataset-fashion-mnist for --dataset fashion-mnist) through scripts/install-system-deps.sh, as npm test does; off: never', symptom: 'start must not touch the system packages (off)' },
  logLevel: { type: 'choice', values: LOG_LEVELS, default: 'info', help: 'the PS\'s log level' },
  logFormat: { type: 'choice', values: LOG_FORMATS, default: 'auto', help: 'human-readable lines (pretty, without the routine per-request lines) or pino JSON lines (json); auto: pretty on a terminal, json otherwise. On a terminal a live status line sits under the log', symptom: 'a program reads the log from a terminal (json)' },
});

/** The chain's own options (server/chain/node.ts), added to START_OPTIONS by `node`. */
export const CHAIN_OPTIONS = defineOptions({
  zk: { type: 'string', arg: 'HOSTS', required: 'host:port,... of the ZooKeeper ensemble (for development, start one with `tabswarm zk`)', help: 'ZooKeeper ensemble, host:port,host:port[/chroot]' },
  cluster: { type: 'string', arg: 'NAME', default: 'tabswarm', help: 'nodes with the same name form one chain' },
  replication: { type: 'choice', values: ['sync', 'async', 'snapshot'], default: 'sync', help: 'ack once the tail applied (sync), at once within --async-window (async), or ship the whole state every --snapshot-every updates (snapshot)', symptom: 'acks wait on the chain\'s length (async, losing at most --async-window on a head failure)' },
  reads: { type: 'choice', values: ['strict', 'relaxed'], default: 'relaxed', help: 'workers read from the tail (strict) or from their node (relaxed)' },
  snapshotEvery: { type: 'int', min: 1, arg: 'K', default: 100, help: 'snapshot replication: updates between shipments' },
  asyncWindow: { type: 'int', min: 1, default: 32, help: 'async: most acked updates not yet at the tail, the most a head failure loses' },
  zkSessionMs: { type: 'int', min: 1, arg: 'MS', default: 1500, help: 'ZooKeeper session timeout: failover floor vs false suspicion', symptom: 'failover is slow (lower it) or live nodes on a loaded machine are dropped (raise it)' },
  fastDetect: { type: 'choice', values: ON_OFF, default: 'on', help: 'drop a neighbour at once when its link breaks and its port refuses connections; off: only its session timeout' },
});

/** `tabswarm node`: every start option (--strategy too) plus the chain's; no tabs and a free port by default. */
export const NODE_OPTIONS = defineOptions({
  ...START_OPTIONS,
  port: { ...START_OPTIONS.port, default: 0 },
  model: PS_OPTIONS.model,
  workers: { ...START_OPTIONS.workers, default: 0 },
  strategy: { ...START_OPTIONS.strategy, help: 'recovery strategy the chain wraps (server/strategies)' },
  ...CHAIN_OPTIONS,
});

/** `tabswarm worker`: a headless Node worker (client/node.ts). */
export const WORKER_OPTIONS = defineOptions({
  url: { type: 'string', arg: 'URL', required: 'the PS\'s base URL, e.g. --url http://127.0.0.1:8080/', help: 'the PS\'s base URL' },
  steps: { type: 'int', min: 0, defaultText: 'run until stopped', help: 'stop after N steps' },
  seed: { type: 'int', min: 0, help: 'batch sampling seed' },
  bufferMode: { type: 'choice', values: ['frozen', 'local'], defaultText: "the run's", help: 'override the run\'s buffer mode' },
  logEveryMs: { type: 'int', min: 0, arg: 'MS', default: 2000, help: 'status line period (also printed on every state change)' },
  requestTimeoutMs: { type: 'int', min: 100, arg: 'MS', defaultText: '10000 (the loop\'s)', help: 'timeout of every request to the PS; no reply in time counts as an outage', symptom: 'a hung PS is noticed too late (lower it) or a loaded one is taken for down (raise it)' },
  drainTimeoutMs: { type: 'int', min: 0, arg: 'MS', defaultText: '--request-timeout-ms + 5000', help: 'on --steps, SIGINT or SIGTERM, deliver the unacknowledged push and flush the buffer, waiting for the acks at most this long; a second Ctrl-C stops at once', symptom: 'workers exit with "outcome":"timeout" and gradients left while the PS was only slow to come back (raise it), or stopping takes too long (lower it)' },
  codec: { type: 'choice', values: CODEC_NAMES, default: 'float32', help: 'how pushes travel: float32 (exact), f16 (half the bytes), int8 (blockwise, about a quarter) or topk (--topk-ratio of the values); the lossy ones keep error feedback. float32 when the PS does not accept it', symptom: 'uploads dominate each step on a slow uplink (f16, int8, topk)' },
  overlap: { type: 'flag', help: 'compute the next gradient while the last push is in flight (one in flight at most): upload and compute overlap, each gradient one push staler', symptom: 'a slow uplink or a distant PS leaves the worker idle between steps' },
  topkRatio: { type: 'number', min: 0, max: 0.5, exclusive: 'min', arg: 'R', default: 0.01, help: 'topk: fraction of the values each push keeps' },
  int8Block: { type: 'int', min: 1, max: 65536, arg: 'B', default: 256, help: 'int8: values per scale' },
  attack: { type: 'string', arg: 'A', help: 'TEST ONLY: turn this worker hostile (client/attack.ts: sign-flip, scale:1e30, noise:S, zero, alie, ipm, lie-base, lie-count, replay, label-flip)' },
  logAcks: { type: 'flag', help: 'print every acknowledged push as {"worker":W,"acks":[[seq,version,duplicate],...]}; the last line\'s "drain" adds what stopping delivered and left' },
});
