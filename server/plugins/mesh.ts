/**
 * The worker mesh's signaling: a PeerJS server (the `peer` package) started beside the PS in the
 * same process, on the same address, once the PS listens. Workers find it through GET /api/mesh,
 * get their peer ids from it, list each other (discovery) and open WebRTC data channels, which
 * then carry weights directly between tabs and survive the PS (and this server) going down.
 * Nothing the PS trusts travels through here: weights relayed between workers carry the PS's
 * signature, and gossip only changes what a worker computes on, never what it flushes.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { PeerServer } from 'peer';
import type { MeshConfig } from '../../shared/api.ts';
import type { ResolvedOptions } from '../config.ts';

export const MESH_PATH = '/peerjs';
export const MESH_KEY = 'tabswarm';

export async function meshPlugin(app: FastifyInstance, { options }: { options: ResolvedOptions }): Promise<void> {
  let server: Server | undefined;
  let port = 0;
  if (options.meshPeers > 0) {
    app.addHook('onListen', async () => {
      const address = app.server.address() as AddressInfo | null;
      if (!address || typeof address === 'string') return;
      server = await new Promise<Server>((resolve) => {
        // alive_timeout: a tab that vanished (SIGKILLed browser) is dropped from discovery soon.
        const peerApp = PeerServer({ port: options.meshPort, host: address.address, path: MESH_PATH, key: MESH_KEY, allow_discovery: true, alive_timeout: 20_000 }, resolve);
        peerApp.on('error', (err: Error) => app.log.warn({ err }, 'mesh signaling error'));
      });
      port = (server.address() as AddressInfo).port;
      app.log.info({ port, path: MESH_PATH }, 'mesh signaling (PeerJS) listening');
    });
  }
  app.get('/api/mesh', async (): Promise<MeshConfig> => ({
    enabled: port > 0,
    port,
    path: MESH_PATH,
    key: MESH_KEY,
    peers: options.meshPeers,
    gossipEveryMs: options.gossipEveryMs,
    relay: options.relay === 'on',
    relayMaxLag: options.relayMaxLag,
  }));
  app.addHook('onClose', async () => {
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server!.close(resolve));
  });
}
