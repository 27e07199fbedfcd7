/**
 * The WebSocket transport: binary frames in, binary frames out, one socket per worker session
 * (`/ws?token=...`). A refused frame closes that socket with the catalogue's close code and a
 * reason naming the error; nothing of it is applied, and every other socket carries on.
 * Frames on one socket are handled in arrival order.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { TabswarmError } from '../../shared/errors.ts';
import { MsgType } from '../../shared/protocol.ts';
import type { ControlMessage } from '../../shared/api.ts';
import type { ParameterServer } from '../ps/service.ts';
import type { WorkerSession } from '../ps/sessions.ts';

export async function wsPlugin(app: FastifyInstance, { ps }: { ps: ParameterServer }): Promise<void> {
  // @fastify/websocket is registered by buildServer (app.ts), with the payload limit.
  const sockets = new Map<number, WebSocket>();
  ps.notify = (session, msg) => {
    if (session.state === 'connected') sockets.get(session.id)?.send(JSON.stringify(msg));
  };

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
    session.state = 'connected';
    session.closeSocket = (code, reason) => socket.close(code, reason);
    ps.updateWorkerGauge();
    // Before anything else: the PS's version, and whether it wants this worker's weights.
    const hello: ControlMessage = { type: 'hello', version: ps.store.version, wantsWeights: ps.strategy.wantsWeights() };
    socket.send(JSON.stringify(hello));
    ps.strategy.workerConnected(session.id);

    let queue = Promise.resolve();
    const fail = (err: unknown): void => refuse(socket, err, request.log, session.id);
    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) return fail(new TabswarmError('PROTO_NOT_BINARY'));
      const bytes = toBytes(data);
      // Apply in arrival order; replies may wait on the strategy (e.g. replication).
      queue = queue.then(async () => {
        if (socket.readyState !== socket.OPEN) return;
        try {
          const reply = await ps.handle(session, bytes);
          if (socket.readyState === socket.OPEN) {
            socket.send(reply);
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
