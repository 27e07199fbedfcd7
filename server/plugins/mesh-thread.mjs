// The PeerJS signaling server in a thread of its own: the `peer` package keeps timers running
// that nothing can stop, so the PS runs it here and terminates the thread when it closes.
import { parentPort, workerData } from 'node:worker_threads';
import { PeerServer } from 'peer';

const { port, host, path, key, aliveTimeoutMs } = workerData;
const app = PeerServer({ port, host, path, key, allow_discovery: true, alive_timeout: aliveTimeoutMs }, (server) => {
  parentPort.postMessage({ type: 'listening', port: server.address().port });
});
app.on('error', (err) => parentPort.postMessage({ type: 'error', message: String(err?.message ?? err) }));
