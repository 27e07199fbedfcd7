/**
 * What the PS signs for each version of the weights it hands out, and how anyone holding the
 * deployment's public key (published in GET /api/model) checks it. One Ed25519 signature covers
 * the layout hash, the version, the applied-push record and a SHA-256 digest of the weights, so
 * a worker can accept weights relayed by an untrusted peer, and a restarted stateless PS can
 * adopt a copy a worker offers. The run is bound through the key: it derives from the secret
 * and the run id (server/ps/signer.ts), so a copy from another run that shares the secret does
 * not verify under this run's public key. The server signs with Node's crypto (server/ps/signer.ts); this
 * file only uses WebCrypto (`globalThis.crypto.subtle`), present in browsers and in Node >= 20.
 */
import type { AppliedRecordEntry, Frame } from './protocol.ts';

export const SIGNATURE_ALGORITHM = 'Ed25519';
/** Ed25519 signatures are 64 bytes; the meta block's `tag` field holds one. */
export const SIGNATURE_BYTES = 64;
export const PUBLIC_KEY_BYTES = 32;
const DOMAIN = new TextEncoder().encode('tabswarm-weights-v1\0');

/** The bytes the signature covers: domain | layoutHash | version | k | record | SHA-256(weights). */
export function signedMessage(layoutHash: number, version: number, record: readonly AppliedRecordEntry[], digest: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(DOMAIN.length + 12 + 12 * record.length + digest.length);
  out.set(DOMAIN, 0);
  const view = new DataView(out.buffer, DOMAIN.length);
  view.setUint32(0, layoutHash >>> 0, true);
  view.setUint32(4, version >>> 0, true);
  view.setUint32(8, record.length, true);
  record.forEach((r, i) => {
    view.setUint32(12 + 12 * i, r.workerId >>> 0, true);
    view.setUint32(16 + 12 * i, r.seq >>> 0, true);
    view.setUint32(20 + 12 * i, r.version >>> 0, true);
  });
  out.set(digest, DOMAIN.length + 12 + 12 * record.length);
  return out;
}

/** Imports the raw 32-byte public key from /api/model (base64) for `verifyWeights`. */
export async function importWeightsKey(base64: string): Promise<CryptoKey> {
  const raw = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  if (raw.length !== PUBLIC_KEY_BYTES) throw new TypeError(`importWeightsKey: key must be ${PUBLIC_KEY_BYTES} bytes, got ${raw.length}`);
  return crypto.subtle.importKey('raw', raw, { name: SIGNATURE_ALGORITHM }, false, ['verify']);
}

/** True when a decoded WEIGHTS (or OFFER) frame carries a valid signature of the PS's key. */
export async function verifyWeights(key: CryptoKey, frame: Pick<Frame, 'layoutHash' | 'modelVersion' | 'meta' | 'payloadBytes'>): Promise<boolean> {
  const meta = frame.meta;
  if (!meta || meta.tag.length !== SIGNATURE_BYTES) return false;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', frame.payloadBytes.slice()));
  const message = signedMessage(frame.layoutHash, frame.modelVersion, meta.record, digest);
  return crypto.subtle.verify({ name: SIGNATURE_ALGORITHM }, key, meta.tag.slice(), message);
}
