/**
 * A home connection on loopback: a TCP proxy whose two directions are token buckets (e.g. 10
 * Mbit/s up, 50 Mbit/s down) with a one-way delay each (RTT = 2 × delay). Everything a worker
 * sends and receives through it (HTTP, WebSocket) is shaped alike, which Chromium's network
 * emulation cannot promise for WebSocket frames. One proxy per worker: each volunteer has its
 * own uplink. Counts the bytes each way.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface LinkOptions {
  /** Worker -> PS, bits per second. */
  readonly upBps: number;
  /** PS -> worker, bits per second. */
  readonly downBps: number;
  /** One-way delay added to every chunk, ms. */
  readonly delayMs: number;
}

/**
 * Writes chunks to `to` no faster than `bps`, each `delayMs` late, in order. One queue and one
 * timer per direction: timers of different durations may fire out of creation order in Node,
 * and a reordered TCP stream is a corrupt WebSocket.
 */
function shaped(to: Socket, bps: number, delayMs: number, count: (n: number) => void): (chunk: Buffer) => void {
  let free = 0; // when the bucket's link is next idle
  const queue: { at: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const drain = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now) {
      const { chunk } = queue.shift()!;
      if (to.writable) to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(drain, queue[0]!.at - now);
  };
  return (chunk) => {
    count(chunk.byteLength);
    const now = performance.now();
    free = Math.max(free, now) + (chunk.byteLength * 8 * 1000) / bps;
    queue.push({ at: free + delayMs, chunk });
    if (!timer) timer = setTimeout(drain, Math.max(0, queue[0]!.at - now));
  };
}

export interface Link {
  readonly url: string;
  readonly up: () => number;
  readonly down: () => number;
  close(): Promise<void>;
}

/** A shaped proxy to the PS at `target` (http://host:port/), listening on a free loopback port. */
export async function throttledLink(target: string, o: LinkOptions): Promise<Link> {
  const t = new URL(target);
  let up = 0;
  let down = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(t.port), t.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('data', shaped(upstream, o.upBps, o.delayMs, (n) => (up += n)));
    upstream.on('data', shaped(client, o.downBps, o.delayMs, (n) => (down += n)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    up: () => up,
    down: () => down,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}
