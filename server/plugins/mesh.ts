/**
 * The worker mesh's signaling: a PeerJS server (the `peer` package) started beside the PS in the
 * same process, on the same address, once the PS listens. Workers find it through GET /api/mesh,
 * get their peer ids from it, list each other (discovery) and open WebRTC data channels, which
 * then carry weights directly between tabs and survive the PS (and this server) going down.
 * Nothing the PS trusts travels through here: weights relayed between workers carry the PS's
 * signature, and gossip only changes what a worker computes on, never what it flushes.
 */
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import { MeshConfigSchema, type MeshConfig } from '../../shared/api.ts';
import type { ResolvedOptions } from '../config.ts';

export const MESH_PATH = '/peerjs';
export const MESH_KEY = 'tabswarm';

export async function meshPlugin(app: FastifyInstance, { options }: { options: ResolvedOptions }): Promise<void> {
  let thread: Worker | undefined;
  let port = 0;
  /** Settles once the signaling server listens (or failed to): /api/mesh waits for it. */
  let settle: () => void = () => {};
  const started = options.meshPeers > 0 ? new Promise<void>((r) => (settle = r)) : Promise.resolve();
  if (options.meshPeers > 0) {
    app.addHook('onListen', async () => {
      const address = app.server.address() as AddressInfo | null;
      if (!address || typeof address === 'string') return;
      // The `peer` package's timers cannot be stopped: it runs in a thread that closing ends.
      // alive_timeout: a tab that vanished (SIGKILLed browser) is dropped from discovery soon.
      // WS_NO_BUFFER_UTIL: the thread's `ws` masks in JavaScript (signaling messages are
      // small). A thread terminated while it loads the native `bufferutil` aborts the whole
      // process (`bufferutil.c:155 Init: Assertion status == napi_ok`, seen once in CI in
      // client/loop.test.ts, whose PSs close within milliseconds of listening).
      const worker = new Worker(new URL('./mesh-thread.mjs', import.meta.url), {
        env: { ...process.env, WS_NO_BUFFER_UTIL: '1' },
        workerData: { port: options.meshPort, host: address.address, path: MESH_PATH, key: MESH_KEY, aliveTimeoutMs: 20_000 },
      });
      thread = worker;
      worker.unref();
      const listening = new Promise<number>((resolve, reject) => {
        worker.on('message', (msg: { type: 'listening'; port: number } | { type: 'error'; message: string }) => {
          if (msg.type === 'listening') {
            port = msg.port;
            resolve(msg.port);
          }
          else app.log.warn({ err: msg.message }, 'mesh signaling error');
        });
        worker.once('error', reject);
      });
      await listening.finally(settle);
      app.log.info({ port, path: MESH_PATH }, 'mesh signaling (PeerJS) listening');
    });
  }
  app.get('/api/mesh', { schema: { response: { 200: MeshConfigSchema } } }, async (): Promise<MeshConfig> => {
    // The PS may answer before its signaling thread listens: wait for it (not forever: a server
    // that never listens, as under app.inject, has none).
    await Promise.race([started, new Promise((r) => setTimeout(r, 5000).unref())]);
    return {
      enabled: port > 0,
      port,
      path: MESH_PATH,
      key: MESH_KEY,
      peers: options.meshPeers,
      gossipEveryMs: options.gossipEveryMs,
      relay: options.relay === 'on',
      relayMaxLag: options.relayMaxLag,
    };
  });
  app.addHook('onClose', async () => {
    // Let a thread that is still starting finish loading first (bounded): terminating it
    // mid-import is what the env above guards against, and this makes it rarer still.
    if (thread) await Promise.race([started, new Promise((r) => setTimeout(r, 5000).unref())]);
    await thread?.terminate();
  });
}
