/**
 * The WebSocket transport: binary frames in, binary frames out, one socket per worker session
 * (`/ws?token=...`). A refused frame closes that socket with the catalogue's close code and a
 * reason naming the error; nothing of it is applied, and every other socket carries on.
 * Frames on one socket are handled in arrival order.
 *
 * Liveness and backpressure: every socket is pinged each `wsPingMs`; one that has not answered
 * the previous ping (a half-open socket of a vanished tab) is dropped and its session ended.
 * The bytes a socket holds (frames received and not yet handled, replies not yet taken by the
 * client) are bounded by `maxQueuedBytes`: past it the socket is closed with PS_SLOW_READER.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { TabswarmError } from '../../shared/errors.ts';
import { MsgType } from '../../shared/protocol.ts';
import type { ControlMessage } from '../../shared/api.ts';
import type { ParameterServer } from '../ps/service.ts';
import { META_ALLOWANCE } from './api.ts';
import type { WorkerSession } from '../ps/sessions.ts';

export interface WsOptions {
  readonly ps: ParameterServer;
  /** Ping period; 0 = no pings. @default 10000 (--ws-ping-ms) */
  readonly wsPingMs: number;
  /** Bytes one socket may hold queued, both ways. @default 16 MiB (--max-queued-bytes) */
  readonly maxQueuedBytes: number;
}

/** After closing a socket that does not read (its close frame waits behind what it left), drop it. */
const SLOW_CLOSE_GRACE_MS = 1000;

export async function wsPlugin(app: FastifyInstance, { ps, wsPingMs, maxQueuedBytes: option }: WsOptions): Promise<void> {
  // @fastify/websocket is registered by buildServer (app.ts), with the payload limit.
  // Never below what one exchange needs: a push in and a weights frame out, with room to spare.
  const maxQueuedBytes = Math.max(option, 3 * (ps.maxFrameBytes + META_ALLOWANCE));
  const sockets = new Map<number, WebSocket>();
  /** Sockets that answered the last ping (or sent anything since). */
  const alive = new WeakSet<WebSocket>();

  /** Whether the socket may hold `more` bytes; if not, it is closed with PS_SLOW_READER. */
  const room = (socket: WebSocket, worker: number, more: number): boolean => {
    const queued = socket.bufferedAmount + more;
    if (queued <= maxQueuedBytes) return true;
    const err = new TabswarmError('PS_SLOW_READER', { worker, bytes: queued, limit: maxQueuedBytes });
    ps.rejected(err, 'ws');
    socket.close(err.spec.wsClose, err.closeReason());
    setTimeout(() => socket.terminate(), SLOW_CLOSE_GRACE_MS).unref();
    return false;
  };

  /** Sends unless the socket already holds too much; then closes it with PS_SLOW_READER. */
  const sendBounded = (socket: WebSocket, data: Uint8Array | string, worker: number, inbound = 0): boolean => {
    const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    if (!room(socket, worker, inbound + bytes)) return false;
    socket.send(data);
    return true;
  };

  ps.notify = (session, msg) => {
    const socket = sockets.get(session.id);
    if (session.state === 'connected' && socket) sendBounded(socket, JSON.stringify(msg), session.id);
  };

  // One timer for every socket: O(sockets) per period. A socket silent since the last ping is
  // half-open (or its tab froze): drop it and end its session, freeing its slot and shards.
  if (wsPingMs > 0) {
    let lastTick = Date.now();
    const pinger = setInterval(() => {
      // A tick far later than due means this loop was blocked: pongs may sit unread behind this
      // timer, so judge no one this round, only ping again.
      const now = Date.now();
      const late = now - lastTick > 1.5 * wsPingMs;
      lastTick = now;
      for (const [id, socket] of sockets) {
        if (!alive.has(socket) && !late) {
          socket.terminate();
          ps.leave(id, `no pong within ${wsPingMs} ms`);
          continue;
        }
        alive.delete(socket);
        socket.ping();
      }
    }, wsPingMs);
    pinger.unref();
    app.addHook('onClose', async () => clearInterval(pinger));
  }

  /**
   * The one place a worker socket is refused: counts the refusal by code (the HTTP side counts
   * in the error handler, server/app.ts) and closes with the catalogue's close code. A fault of
   * the PS itself is logged and closes with 1011, uncounted.
   */
  const refuse = (socket: WebSocket, err: unknown, log: FastifyBaseLogger, worker?: number): void => {
    if (err instanceof TabswarmError) {
      ps.rejected(err, 'ws');
      socket.close(err.spec.wsClose, err.closeReason());
    } else {
      log.error({ err, worker }, 'frame handling failed');
      socket.close(1011, 'internal error');
    }
  };

  app.get('/ws', { websocket: true }, (socket, request) => {
    const token = (request.query as { token?: string }).token;
    let session: WorkerSession;
    try {
      session = ps.sessions.authenticate(token);
    } catch (err) {
      refuse(socket, err instanceof TabswarmError ? err : new TabswarmError('PS_NO_SESSION'), request.log);
      return;
    }
    const previous = sockets.get(session.id);
    if (previous) {
      const replaced = new TabswarmError('PS_REPLACED', { worker: session.id });
      previous.close(replaced.spec.wsClose, replaced.closeReason());
    }
    sockets.set(session.id, socket);
    alive.add(socket);
    socket.on('pong', () => alive.add(socket));
    session.state = 'connected';
    session.closeSocket = (code, reason) => socket.close(code, reason);
    ps.updateWorkerGauge();
    // Before anything else: the PS's version, and whether it wants this worker's weights.
    const hello: ControlMessage = { type: 'hello', version: ps.store.version, wantsWeights: ps.strategy.wantsWeights() };
    sendBounded(socket, JSON.stringify(hello), session.id);
    ps.claims.served(session, hello.version, false); // told: a base version up to it is no claim ahead
    ps.strategy.workerConnected(session.id);

    let queue = Promise.resolve();
    /** Bytes received and not yet handled (a client sending faster than the PS answers). */
    let inbound = 0;
    const fail = (err: unknown): void => refuse(socket, err, request.log, session.id);
    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (socket.readyState !== socket.OPEN) return;
      alive.add(socket);
      if (!isBinary) return fail(new TabswarmError('PROTO_NOT_BINARY'));
      const bytes = toBytes(data);
      if (!room(socket, session.id, inbound + bytes.byteLength)) return;
      // Pushes are counted where they arrive, so the in-flight bound sees the queue (ps/pace.ts).
      let release: (() => void) | undefined;
      try {
        release = ps.arrive(session, bytes);
      } catch (err) {
        return fail(err);
      }
      inbound += bytes.byteLength;
      // Apply in arrival order; replies may wait on the strategy (e.g. replication).
      queue = queue.then(async () => {
        inbound -= bytes.byteLength;
        if (socket.readyState !== socket.OPEN) return release?.();
        try {
          const reply = await ps.handle(session, bytes, true).finally(() => release?.());
          if (socket.readyState === socket.OPEN && sendBounded(socket, reply, session.id, inbound)) {
            // PS egress of weights (what the mesh's relay saves): byte 5 is the frame type.
            if (reply[5] === MsgType.WEIGHTS) ps.metrics.weightsBytesSent.inc(reply.byteLength);
          }
        } catch (err) {
          fail(err);
        }
      });
    });
    socket.on('close', () => {
      if (sockets.get(session.id) !== socket) return;
      sockets.delete(session.id);
      session.closeSocket = undefined;
      if (ps.sessions.get(session.id)) {
        session.state = 'disconnected';
        session.lastSeen = Date.now();
      }
      ps.updateWorkerGauge();
    });
  });
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
