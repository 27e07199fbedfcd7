/**
 * The one error catalogue shared by server, browser and Node workers.
 *
 * Codes are stable and grouped by area (PROTO, PS, WORKER, DATA, CONFIG, ADMIN, CHECKPOINT, ZK, COORD, CHAIN). A retired code is
 * Codes are stable and grouped by area (PROTO, PS, WORKER, DATA, CONFIG, ADMIN, CHECKPOINT, ZK, COORD, MESH). A retired code is
 * never reused. Each entry says how the error reaches a client: an HTTP status for the HTTP
 * endpoints and a WebSocket close code for the socket, and whether a client may retry.
 * `docs/errors.md` lists the same codes; `shared/errors.test.ts` keeps the two in sync.
 *
 * WebSocket close codes use the application range 4000-4999 in two bands:
 *   4000-4099 retryable: reconnect (with backoff) and carry on;
 *   4400-4499 terminal for this session: the client is wrong (bad frame, wrong model)
 *             or its session is gone; it must rejoin or stop, not resend the same bytes.
 */

export interface ErrorSpec {
  /** Message template; `{name}` is replaced from the error's details. */
  readonly message: string;
  readonly http: number;
  readonly wsClose: number;
  readonly retryable: boolean;
}

export const ERRORS = {
  // Protocol: a frame the decoder refuses. Nothing is applied.
  PROTO_TOO_SHORT: { message: 'Frame of {bytes} bytes is shorter than the {header}-byte header', http: 400, wsClose: 4400, retryable: false },
  PROTO_BAD_MAGIC: { message: 'Frame magic 0x{got} is not 0x{want}: not a tabswarm frame', http: 400, wsClose: 4401, retryable: false },
  PROTO_BAD_VERSION: { message: 'Protocol version {got} is not supported (this server speaks {want})', http: 400, wsClose: 4402, retryable: false },
  PROTO_UNKNOWN_TYPE: { message: 'Unknown message type 0x{type}', http: 400, wsClose: 4403, retryable: false },
  PROTO_LAYOUT_MISMATCH: { message: 'Layout hash {got} does not match the model layout {want}: reload the worker page', http: 409, wsClose: 4404, retryable: false },
  PROTO_BAD_LENGTH: { message: 'Payload of {got} values does not match the {want} the {type} frame needs', http: 400, wsClose: 4405, retryable: false },
  PROTO_NON_FINITE: { message: 'Payload value at index {index} is not finite ({value})', http: 422, wsClose: 4406, retryable: false },
  PROTO_OVERSIZE: { message: 'Frame of {bytes} bytes exceeds the limit of {limit} bytes', http: 413, wsClose: 4407, retryable: false },
  PROTO_BAD_DTYPE: { message: 'Payload dtype {dtype} is not accepted here (this PS accepts {accepted})', http: 400, wsClose: 4408, retryable: false },
  PROTO_BAD_COUNT: { message: 'Gradient count {count} must be a positive integer', http: 400, wsClose: 4409, retryable: false },
  PROTO_NOT_BINARY: { message: 'Text message received where a binary frame was expected', http: 400, wsClose: 4410, retryable: false },
  PROTO_BAD_META: { message: 'Meta block of a weights frame is malformed: {detail}', http: 400, wsClose: 4412, retryable: false },
  PROTO_BAD_CODEC: { message: 'The {codec} payload of a push is malformed: {detail}', http: 400, wsClose: 4419, retryable: false },
  // Sessions: who may send what.
  PS_NO_SESSION: { message: 'No valid session: join at POST /api/join and present the token', http: 401, wsClose: 4420, retryable: false },
  PS_WRONG_WORKER: { message: 'Frame claims worker {claimed} but the session belongs to worker {owner}', http: 403, wsClose: 4421, retryable: false },
  PS_SESSION_EXPIRED: { message: 'Session of worker {worker} expired after {idleMs} ms without contact: rejoin', http: 401, wsClose: 4422, retryable: false },
  PS_REPLACED: { message: 'Worker {worker} opened a newer connection; this one is closed', http: 409, wsClose: 4423, retryable: false },
  PS_FORGED_WEIGHTS: { message: 'Offered weights at version {version} were refused: {detail}', http: 403, wsClose: 4424, retryable: false },
  PS_BAD_RESUME: { message: 'Cannot resume worker {worker}: its id tag does not verify with this deployment\'s secret', http: 403, wsClose: 4425, retryable: false },
  PS_CLAIM_AHEAD: { message: 'Push of worker {worker} claims base version {claimed}, but this PS sent it no version past {sent}', http: 422, wsClose: 4426, retryable: false },
  PS_COUNT_TOO_LARGE: { message: 'Push of worker {worker} claims {count} gradients; at most {max} are accepted in one push or flush', http: 422, wsClose: 4427, retryable: false },
  PS_FULL: { message: 'The server already serves {max} workers', http: 503, wsClose: 4001, retryable: true },
  PS_SHUTTING_DOWN: { message: 'The parameter server is shutting down', http: 503, wsClose: 4000, retryable: true },
  PS_BAD_REQUEST: { message: 'Invalid request: {detail}', http: 400, wsClose: 4411, retryable: false },
  // Admission, liveness and backpressure (server/ps/admission.ts, server/plugins/ws.ts): a public PS under load or abuse.
  PS_RATE_LIMITED: { message: 'Too many joins from {address}: at most {max} per {window}; retry in {retryAfterSec} s', http: 429, wsClose: 4002, retryable: true },
  PS_TOO_MANY_SESSIONS: { message: 'Address {address} already holds {max} worker sessions; retry when one ends', http: 429, wsClose: 4006, retryable: true },
  PS_SLOW_READER: { message: 'Worker {worker} does not read its replies: {bytes} bytes queued, the limit is {limit}', http: 503, wsClose: 4007, retryable: true },
  PS_NO_WORK: { message: 'Session of worker {worker} held a socket without a push or pull for {ms} ms: rejoin', http: 401, wsClose: 4428, retryable: false },
  PS_RECORD_EXPIRED: { message: 'The applied-push record of worker {worker} is past the retention horizon: join as a new worker; gradients buffered under the old id are dropped', http: 409, wsClose: 4429, retryable: false },
  PS_REQUEST_TIMEOUT: { message: 'The request did not arrive within {ms} ms', http: 408, wsClose: 4008, retryable: true },
  // Data.
  DATA_MISSING: { message: 'Data set {dataset} not found at {path}: {hint}', http: 500, wsClose: 4430, retryable: false },
  DATA_BAD_IDX: { message: 'IDX file {file} is malformed: {detail}', http: 500, wsClose: 4431, retryable: false },
  DATA_NO_SHARD: { message: 'Shard {shard} does not exist (the data set has {shards} shards)', http: 404, wsClose: 4411, retryable: false },
  // Configuration and models.
  CONFIG_INVALID: { message: 'Option {option}: {detail}', http: 400, wsClose: 4411, retryable: false },
  MODEL_UNKNOWN: { message: 'Unknown model {model}; known models: {known}', http: 400, wsClose: 4411, retryable: false },
  // Worker-side conditions, reported by the worker page and the Node worker.
  WORKER_BACKEND_UNSUPPORTED: { message: 'Backend {backend} cannot train {model}: {reason}', http: 400, wsClose: 4411, retryable: false },
  WORKER_TIMEOUT: { message: 'No answer to {what} within {ms} ms', http: 504, wsClose: 4003, retryable: true },
  WORKER_DISCONNECTED: { message: 'Connection to the parameter server closed ({code} {reason})', http: 503, wsClose: 4004, retryable: true },
  WORKER_BAD_RESPONSE: { message: 'The answer to {what} does not match its schema: {detail}', http: 502, wsClose: 4005, retryable: true },
  // Admin API (/api/admin/*): operators and tests, never workers.
  ADMIN_UNAUTHORIZED: { message: 'Admin call refused: {reason}', http: 401, wsClose: 4440, retryable: false },
  ADMIN_NO_SHARD: { message: 'PS shard {shard} does not exist (this PS has {shards} shards)', http: 404, wsClose: 4441, retryable: false },
  ADMIN_UNSUPPORTED: { message: 'Strategy {strategy} cannot {action}: {hint}', http: 409, wsClose: 4442, retryable: false },
  ADMIN_NO_SUPERVISOR: { message: 'This PS cannot {action}: {hint}', http: 409, wsClose: 4446, retryable: false },
  ADMIN_NO_NODE: { message: 'Node {node} is not in this cluster (nodes: {nodes})', http: 404, wsClose: 4447, retryable: false },
  ADMIN_NO_WORKER: { message: 'Worker {worker} has no session on this PS', http: 404, wsClose: 4448, retryable: false },
  // Checkpoints (server/strategies/checkpoint).
  CHECKPOINT_CORRUPT: { message: 'Checkpoint {file} is rejected: {detail}', http: 500, wsClose: 4450, retryable: false },
  CHECKPOINT_MISSING: { message: 'No checkpoint of PS shard {shard} verifies in {where}: {detail}', http: 409, wsClose: 4451, retryable: false },
  CHECKPOINT_WRITE_FAILED: { message: 'Checkpoint at version {version} could not be written to {where}: {detail}', http: 500, wsClose: 4452, retryable: false },
  // ZooKeeper launcher (server/zk): local servers for development and tests.
  ZK_MISSING: { message: 'ZooKeeper cannot start: {what} not found at {path}; install it with: sudo apt-get install -y zookeeper', http: 500, wsClose: 4460, retryable: false },
  ZK_START_FAILED: { message: 'ZooKeeper server {server} on port {port} did not come up: {detail}', http: 500, wsClose: 4461, retryable: false },
  // Coordination (server/coord): membership, watches and versioned data in ZooKeeper or its in-memory twin.
  COORD_VERSION_CONFLICT: { message: 'Version conflict on {path}: expected version {expected}, it has changed; re-read and retry', http: 409, wsClose: 4010, retryable: true },
  COORD_SESSION_EXPIRED: { message: 'ZooKeeper session {session} expired ({reason}); {op} refused: re-register and re-watch on the new session', http: 503, wsClose: 4011, retryable: true },
  COORD_UNAVAILABLE: { message: '{op} {path}: no answer from ZooKeeper ({servers}) within {ms} ms; the outcome is unknown', http: 503, wsClose: 4012, retryable: true },
  COORD_NO_NODE: { message: 'No znode at {path} ({op})', http: 404, wsClose: 4462, retryable: false },
  COORD_BAD_ARGUMENT: { message: 'Invalid argument to {op}: {detail}', http: 400, wsClose: 4463, retryable: false },
  COORD_CLOSED: { message: 'The coordination client is closed; {op} {path} refused', http: 500, wsClose: 4464, retryable: false },
  COORD_FAILED: { message: 'ZooKeeper {op} {path} failed: {detail}', http: 500, wsClose: 4465, retryable: false },
  COORD_NO_AUTH: { message: 'ZooKeeper refused {op} {path}: the znode\'s ACL does not grant it to this client\'s credentials (another deployment secret, or none)', http: 403, wsClose: 4466, retryable: false },
  // Chain replication (server/chain): a PS cluster whose membership and order ZooKeeper keeps.
  CHAIN_NOT_HEAD: { message: 'This node ({node}) is not the head of the chain at epoch {epoch}; send writes to the head: {head}', http: 421, wsClose: 4020, retryable: true },
  CHAIN_FENCED: { message: 'This node ({node}) is fenced: {reason}; it accepts no writes until it is back in the chain', http: 503, wsClose: 4021, retryable: true },
  CHAIN_NOT_READY: { message: 'This node ({node}) has no state yet (joining the chain at epoch {epoch}); read from another node', http: 503, wsClose: 4022, retryable: true },
  CHAIN_STALE_EPOCH: { message: 'Chain frame from epoch {got} refused: this node is at epoch {epoch}', http: 409, wsClose: 4023, retryable: true },
  CHAIN_BAD_LINK: { message: 'Chain link from {from} refused: {detail}', http: 403, wsClose: 4490, retryable: false },
  CHAIN_BAD_FRAME: { message: 'Chain frame refused: {detail}', http: 400, wsClose: 4491, retryable: false },
  CHAIN_CONFIG_MISMATCH: { message: 'Node options do not match cluster {cluster}: {detail}', http: 409, wsClose: 4492, retryable: false },
  CHAIN_BAD_MAC: { message: 'Chain message from {from} refused: {detail}; the link is closed', http: 403, wsClose: 4493, retryable: false },
  // Worker mesh (client/mesh): messages from other workers' tabs, which are untrusted. Never applied, counted, and the peer is disconnected.
  MESH_BAD_MESSAGE: { message: 'Peer {peer} sent a malformed mesh message: {detail}', http: 400, wsClose: 4470, retryable: false },
  MESH_BAD_LENGTH: { message: 'Peer {peer} sent a {kind} message of {got} bytes where {want} were expected', http: 400, wsClose: 4471, retryable: false },
  MESH_LAYOUT_MISMATCH: { message: 'Peer {peer} sent weights for layout {got}, not this model\'s {want}', http: 409, wsClose: 4472, retryable: false },
  MESH_NON_FINITE: { message: 'Peer {peer} sent weights with a non-finite value at index {index} ({value})', http: 422, wsClose: 4473, retryable: false },
  MESH_FORGED_WEIGHTS: { message: 'Peer {peer} relayed weights at version {version} that the PS did not sign: {detail}', http: 403, wsClose: 4474, retryable: false },
  // Run identity (issue 13): a copy or checkpoint another run (or another deployment) made.
  PS_OTHER_RUN: { message: 'Offered weights at version {version} were signed by another run or deployment (key {got}, this run\'s is {want}): {detail}', http: 409, wsClose: 4437, retryable: false },
  MESH_OTHER_RUN: { message: 'Peer {peer} relayed weights at version {version} signed by another run or deployment (key {got}, this run\'s is {want})', http: 409, wsClose: 4475, retryable: false },
  CHECKPOINT_OTHER_RUN: { message: 'Checkpoint {file} belongs to run {got}, not this run ({want}): {detail}', http: 409, wsClose: 4453, retryable: false },
  // Pace and repeat offenders (issue 11, server/ps/pace.ts): one session pushing too fast, too much at once, or too often hostile.
  PS_PUSH_RATE: { message: 'Worker {worker} pushes faster than {max} per second; retry in {retryAfterSec} s', http: 429, wsClose: 4009, retryable: true },
  PS_PUSHES_IN_FLIGHT: { message: 'Worker {worker} already has {max} pushes in flight; wait for their acks', http: 429, wsClose: 4013, retryable: true },
  PS_OFFENDER: { message: 'Worker {worker} was disconnected: {strikes} of its last {window} pushes were clipped or refused', http: 429, wsClose: 4014, retryable: true },
  PS_KEPT_OUT: { message: 'Worker {worker} was disconnected as an offender ({reason}); retry in {retryAfterSec} s', http: 429, wsClose: 4015, retryable: true },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export type ErrorDetails = Record<string, string | number | boolean | undefined>;

/** What the HTTP endpoints send for an error (see docs/errors.md). */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  details: ErrorDetails;
}

export function formatMessage(code: ErrorCode, details: ErrorDetails): string {
  return ERRORS[code].message.replace(/\{(\w+)\}/g, (_, key: string) => String(details[key] ?? `{${key}}`));
}

export class TabswarmError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;
  constructor(code: ErrorCode, details: ErrorDetails = {}) {
    super(`${code}: ${formatMessage(code, details)}`);
    this.name = 'TabswarmError';
    this.code = code;
    this.details = details;
  }
  get spec(): ErrorSpec {
    return ERRORS[this.code];
  }
  /**
   * The JSON body the HTTP endpoints send. `details` travel with it, so a client rebuilds the
   * whole error with `TabswarmError.fromJSON` (e.g. CHAIN_NOT_HEAD's `head` URL) and never
   * parses the message.
   */
  toJSON(): ErrorBody {
    return { code: this.code, message: formatMessage(this.code, this.details), retryable: this.spec.retryable, details: this.details };
  }
  /**
   * Rebuilds the error an HTTP endpoint sent (`toJSON`'s body), or undefined when the body does
   * not name a catalogued code. The body is outside input: only primitive detail values are
   * kept, at most 32 of them; the sender's message is kept as it came.
   */
  static fromJSON(body: unknown): TabswarmError | undefined {
    if (typeof body !== 'object' || body === null) return undefined;
    const { code, message, details } = body as { code?: unknown; message?: unknown; details?: unknown };
    if (!isErrorCode(code)) return undefined;
    const kept: ErrorDetails = {};
    if (typeof details === 'object' && details !== null) {
      for (const [k, v] of Object.entries(details).slice(0, 32)) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') kept[k] = v;
    }
    const err = new TabswarmError(code, kept);
    if (typeof message === 'string' && message) err.message = `${code}: ${message.slice(0, 1000)}`;
    return err;
  }
  /** A WebSocket close reason: at most 123 bytes of UTF-8, starting with the code. */
  closeReason(): string {
    const text = `${this.code}: ${formatMessage(this.code, this.details)}`;
    const bytes = new TextEncoder().encode(text);
    if (bytes.length <= 123) return text;
    return new TextDecoder().decode(bytes.subarray(0, 120)).replace(/\uFFFD$/, '') + '...';
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}

/** Maps a WebSocket close code back to its catalogue entry (first code with that close code). */
export function codeForClose(closeCode: number): ErrorCode | undefined {
  for (const [code, spec] of Object.entries(ERRORS)) if (spec.wsClose === closeCode) return code as ErrorCode;
  return undefined;
}

export function isRetryableClose(closeCode: number): boolean {
  // 1000-range closes (normal, going away, abnormal 1006) and the 4000-4099 band are retryable.
  return closeCode < 4000 || (closeCode >= 4000 && closeCode < 4100);
}
