/**
 * The options of the operator's tools, each declared once (server/options/schema.ts):
 * `tabswarm zk`, `tabswarm cluster`, `tabswarm swarm` and `tabswarm experiment`. Kept apart from
 * the commands so `tabswarm help` lists them without loading ZooKeeper, Chromium or the harness.
 */
import { MODEL_NAMES } from '../../shared/models.ts';
import { DATASET_NAMES } from '../data.ts';
import { EXPERIMENT_STRATEGIES, REFERENCE_STRATEGIES } from '../experiment/strategies.ts';
import { defineOptions } from './schema.ts';
import { BACKENDS, LOG_LEVELS } from './server.ts';

/** `tabswarm zk`: a local ZooKeeper for development (server/zk). */
export const ZK_OPTIONS = defineOptions({
  ensemble: { type: 'int', min: 1, default: 1, help: 'run N servers as a quorum ensemble (1: standalone)', symptom: 'you need to see a chain survive a ZooKeeper server loss (3)' },
  port: { type: 'int', min: 1, max: 65535, defaultText: 'free ports', help: 'client port of server 1, then N+1, ...' },
  dataDir: { type: 'string', arg: 'D', defaultText: 'a temp folder', help: 'put server-1/, server-2/, ... (data, zoo.cfg, zookeeper.log) under D' },
  keep: { type: 'flag', help: 'keep the servers\' data and logs at exit (otherwise removed)' },
  tickMs: { type: 'int', min: 1, arg: 'MS', defaultText: '250', help: 'ZooKeeper tickTime; sessions may be as short as 2 ticks' },
});

/**
 * `tabswarm cluster`: the supervisor's own options. Every other option is passed to each node,
 * e.g. --model, --strategy, --lr (server/cluster-supervisor/cli.ts splits them).
 */
export const CLUSTER_OPTIONS = defineOptions({
  nodes: { type: 'int', min: 1, defaultText: '1 without --replication, 3 with', help: 'node processes' },
  replication: { type: 'choice', values: ['sync', 'async', 'snapshot'], defaultText: 'one `tabswarm start` PS', help: 'a ZooKeeper chain of `tabswarm node`s' },
  snapshotEvery: { type: 'int', min: 1, arg: 'K', defaultText: "the node's, 100", help: 'passed to the chain\'s nodes' },
  reads: { type: 'choice', values: ['strict', 'relaxed'], defaultText: "the node's, relaxed", help: 'passed to the chain\'s nodes' },
  zk: { type: 'string', arg: 'HOSTS', defaultText: 'a local one is started', help: 'an existing ZooKeeper, host:port,...' },
  cluster: { type: 'string', arg: 'NAME', defaultText: 'tabswarm', help: 'the chain\'s name, passed to its nodes' },
  host: { type: 'string', arg: 'H', default: '127.0.0.1', help: 'address the console and the nodes bind' },
  port: { type: 'int', min: 0, max: 65535, default: 8090, help: 'the console\'s port' },
  basePort: { type: 'int', min: 1, max: 65535, defaultText: 'free ports', help: 'node i listens on N+i-1' },
  adminToken: { type: 'string', minLength: 16, arg: 'T', defaultText: 'env TABSWARM_ADMIN_TOKEN, else random, printed', help: 'one token for the console and every node' },
  secret: { type: 'string', minLength: 16, arg: 'S', defaultText: 'env TABSWARM_SECRET, else random', help: 'shared HMAC secret of the nodes' },
  logDir: { type: 'string', arg: 'D', help: 'each node\'s output in D/node-i.log (--log-level goes to the nodes)' },
  consoleLogLevel: { type: 'choice', values: LOG_LEVELS, default: 'warn', help: 'the supervisor\'s own log level' },
});

/** `tabswarm swarm`: headless Chromium worker tabs against a PS (server/swarm). */
export const SWARM_OPTIONS = defineOptions({
  url: { type: 'string', arg: 'URL', required: 'the PS to join, e.g. --url http://127.0.0.1:8080/', help: 'the PS (or any node) to join' },
  workers: { type: 'int', min: 1, default: 2, help: 'headless Chromium worker tabs' },
  browsers: { type: 'int', min: 1, arg: 'M', default: 1, help: 'spread the tabs over M browser processes', symptom: 'one browser process saturates a core while others idle' },
  backend: { type: 'choice', values: BACKENDS, default: 'auto', help: 'the tabs\' tfjs backend' },
  duration: { type: 'number', min: 1, arg: 'S', defaultText: 'until Ctrl-C', help: 'stop after S seconds' },
  churn: { type: 'number', min: 0, arg: 'R', default: 0, help: 'close and reopen R random tabs per minute', symptom: 'to test that volunteers coming and going lose no work' },
  seed: { type: 'int', min: 0, default: 1, help: 'seed of the churn schedule' },
  json: { type: 'flag', help: 'print one JSON status line per second instead of the live line' },
});

const strategyNames = (): string => EXPERIMENT_STRATEGIES.map((s) => s.name).join(', ');

/** `tabswarm experiment`: the failure-schedule harness (docs/experiments.md). */
export const EXPERIMENT_OPTIONS = defineOptions({
  strategies: { type: 'list', of: 'string', arg: 'S,...', default: ['all'], help: `${strategyNames()} | all (${REFERENCE_STRATEGIES.join(', ')}); a strategy may carry node options: stateless+rule=sum+buffer-mode=local` },
  kills: { type: 'list', of: 'number', min: 0, none: 'none', arg: 'T,...', default: [30, 80], help: 'SIGKILL the PS (the chain\'s head) at these seconds after the first update; none = no kills' },
  downtime: { type: 'number', min: 0, arg: 'S', default: 20, help: 'restart S seconds after each kill' },
  duration: { type: 'number', min: 1, arg: 'S', default: 200, help: 'seconds of each run after the first update' },
  model: { type: 'choice', values: MODEL_NAMES, default: 'fashion-cnn', help: 'the model' },
  dataset: { type: 'choice', values: DATASET_NAMES, default: 'fashion-mnist', help: 'the data set' },
  lr: { type: 'number', min: 0, exclusive: 'min', arg: 'X', defaultText: "the model's, 0.01 for fashion-cnn", help: 'SGD learning rate' },
  batch: { type: 'int', min: 1, defaultText: "the model's, 32 for fashion-cnn", help: 'worker batch size' },
  workers: { type: 'int', min: 1, default: 2, help: 'worker tabs' },
  browsers: { type: 'int', min: 1, arg: 'M', default: 1, help: 'browser processes' },
  backend: { type: 'choice', values: BACKENDS, default: 'webgl', help: 'the tabs\' backend' },
  repeat: { type: 'int', min: 1, arg: 'R', default: 1, help: 'runs per strategy', symptom: 'runs of one strategy disagree more than strategies do' },
  baseline: { type: 'choice', values: ['yes', 'no'], default: 'yes', help: 'also run each strategy once without failures, for time-to-target' },
  target: { type: 'number', min: 0, max: 1, arg: 'A', default: 0.6, help: 'the accuracy for time-to-target' },
  evalEvery: { type: 'int', min: 100, arg: 'MS', default: 2000, help: 'PS test evaluation period' },
  evalExamples: { type: 'int', min: 1, default: 10000, help: 'test examples per evaluation' },
  sampleMs: { type: 'int', min: 100, arg: 'MS', default: 1000, help: 'recorder period' },
  nodeArgs: { type: 'string', arg: '"..."', default: '', help: 'extra options for every PS node, e.g. "--rule sum --buffer-mode local"' },
  out: { type: 'string', arg: 'DIR', defaultText: 'experiments/<date>', help: 'results folder' },
  reportOnly: { type: 'flag', help: 're-render the figures and summary from the runs in --out' },
});

/**
 * `tabswarm doctor` (server/start/doctor.ts): where to look for each component. Each default is
 * where Debian and `npm install` put it; pointing one elsewhere is how a test shows a gap.
 */
export const DOCTOR_OPTIONS = defineOptions({
  chromium: { type: 'string', arg: 'PATH', defaultText: 'env TABSWARM_CHROMIUM, else /usr/bin/chromium', help: 'the Chromium executable to check (and launch, for the backends)' },
  java: { type: 'string', arg: 'J', defaultText: 'env JAVA, else java on PATH', help: 'the java that runs ZooKeeper' },
  zkJars: { type: 'string', arg: 'DIR', default: '/usr/share/java', help: 'folder holding zookeeper.jar (Debian\'s zookeeper package)' },
  fashionDir: { type: 'string', arg: 'DIR', default: '/usr/share/datasets/fashion-mnist', help: 'Fashion-MNIST\'s IDX files (Debian\'s dataset-fashion-mnist)' },
  port: { type: 'int', min: 0, max: 65535, default: 8080, help: 'the port `tabswarm start` will listen on, checked free' },
  browser: { type: 'choice', values: ['on', 'off'], default: 'on', help: 'launch Chromium to check WebGPU, WebGL and wasm (off: only check it is there)', symptom: 'a quick check without starting a browser (off)' },
});
