/**
 * Speaking on a chain link by hand (test/chain-faults.test.ts, test/chain-links.test.ts): the
 * predecessor's side of the handshake (server/chain/link.ts) with every part under the test's
 * control, so a test can play a predecessor with another secret, another name or epoch, or
 * replay what it captured.
 */
import WebSocket from 'ws';
import { LinkAuth, freshNonce, linkUrl, predecessorProof, type LinkHello, type LinkTranscript } from '../server/chain/link.ts';

export interface DialOptions {
  readonly from: string;
  readonly to: string;
  readonly epoch: number;
  /** The secret the proof is made with (the cluster's, or another). */
  readonly secret: string;
  /** @default a fresh one */
  readonly nonce?: string;
  /** What to answer the challenge with. @default the proof for this transcript */
  readonly reply?: (t: LinkTranscript) => string;
}

export type Dialled =
  | { readonly ok: true; readonly socket: WebSocket; readonly auth: LinkAuth; readonly hello: LinkHello; readonly transcript: LinkTranscript; readonly reply: string }
  | { readonly ok: false; readonly code: number; readonly reason: string; readonly transcript?: LinkTranscript; readonly reply?: string };

/** Opens `/chain` on `nodeUrl` and runs the handshake; resolves with the link or the refusal. */
export function dialLink(nodeUrl: string, o: DialOptions, timeoutMs = 15000): Promise<Dialled> {
  const nonce = o.nonce ?? freshNonce();
  const socket = new WebSocket(linkUrl(nodeUrl, o.from, o.to, o.epoch, nonce), { perMessageDeflate: false });
  socket.binaryType = 'nodebuffer';
  return new Promise((resolve) => {
    let t: LinkTranscript | undefined;
    let reply: string | undefined;
    let auth: LinkAuth | undefined;
    const timer = setTimeout(() => {
      socket.terminate();
      resolve({ ok: false, code: 0, reason: 'timeout', transcript: t, reply });
    }, timeoutMs);
    socket.on('error', () => {});
    socket.on('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ ok: false, code, reason: reason.toString('utf8'), transcript: t, reply });
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (!t) {
        const challenge = JSON.parse(data.toString('utf8')) as { challenge: string };
        t = { from: o.from, to: o.to, epoch: o.epoch, predecessorNonce: nonce, successorNonce: challenge.challenge };
        reply = o.reply ? o.reply(t) : JSON.stringify({ proof: predecessorProof(o.secret, t) });
        auth = new LinkAuth(o.secret, t, 'predecessor');
        socket.send(reply);
        return;
      }
      if (!isBinary || !auth) return;
      const body = auth.open(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (!body) return;
      clearTimeout(timer);
      // The caller takes the socket from here (acks may follow the hello at once).
      socket.removeAllListeners('close');
      socket.removeAllListeners('message');
      resolve({ ok: true, socket, auth, hello: JSON.parse(Buffer.from(body).toString('utf8')) as LinkHello, transcript: t, reply: reply! });
    });
  });
}
