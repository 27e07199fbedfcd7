/**
 * What the PS issues so that what workers carry across a PS failure, or pass to each other, can
 * be trusted again. Both come from the deployment's secret (--secret or TABSWARM_SECRET), so
 * every PS process of a deployment (a restarted stateless PS, chain nodes) issues the same:
 *
 *   idTag       HMAC(secret, "id" | workerId): proves a worker may rejoin under an old id,
 *               keeping its applied-push record (exactly-once) across PS restarts.
 *   weightsTag  Ed25519 signature over layoutHash | version | record | SHA-256(weights)
 *               (shared/signing.ts), with a key derived from the secret and the run id.
 *               Asymmetric, so that workers can verify weights a peer relays (public key in
 *               GET /api/model) while only a PS can issue them; a volunteer cannot forge or
 *               alter any of it.
 *
 * The run id (--run-id; a cluster's is fixed in ZooKeeper when the cluster is created, see
 * newRunId) goes into the signing key: two runs that share a secret sign with different keys,
 * so a copy from one (a stale tab's IndexedDB, a deliberate replay) does not verify in the
 * other, at a stateless PS (PS_FORGED_WEIGHTS) or at a mesh peer (MESH_FORGED_WEIGHTS). With
 * no run id the key is the secret's alone, as before run ids: copies of every such run verify.
 */
import { createHash, createHmac, createPrivateKey, createPublicKey, randomBytes, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { TabswarmError } from '../../shared/errors.ts';
import type { AppliedRecordEntry } from '../../shared/protocol.ts';
import { KEY_ID_BYTES } from '../../shared/protocol.ts';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, otherKey, signedMessage } from '../../shared/signing.ts';

export const TAG_BYTES = SIGNATURE_BYTES;
/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** What a run id may hold: letters, digits, '_', '.', '-', at most 64. */
export const RUN_ID_PATTERN = /^[\w.-]{1,64}$/;

/**
 * A new run's id, fixed when the run (or cluster) is created: a digest of what it trains and a
 * random nonce, so two runs of the same model, data and seed still differ.
 */
export function newRunId(model: string, dataset: string, seed: number): string {
  return createHash('sha256').update(JSON.stringify(['tabswarm-run', model, dataset, seed, randomBytes(16).toString('hex')])).digest('hex').slice(0, 32);
}

export class Signer {
  private readonly key: Buffer;
  private readonly signingKey: KeyObject;
  private readonly verifyingKey: KeyObject;
  /** The raw 32-byte Ed25519 public key, base64: what GET /api/model publishes. */
  readonly publicKey: string;
  /** The key id the meta block carries beside each signature (shared/signing.ts keyIdOf). */
  readonly keyId: Uint8Array;
  /** True when the secret was generated for this process: tags then die with it. */
  readonly ephemeral: boolean;

  /** The run whose copies this signer issues and accepts ('' for none). */
  readonly runId: string;

  constructor(secret?: string, runId = '') {
    if (runId !== '' && !RUN_ID_PATTERN.test(runId)) throw new TabswarmError('CONFIG_INVALID', { option: '--run-id', detail: `'${runId.slice(0, 80)}' must be 1-64 letters, digits, '_', '.' or '-'` });
    this.ephemeral = !secret;
    this.runId = runId;
    this.key = secret ? Buffer.from(secret, 'utf8') : randomBytes(32);
    // The seed is a function of the secret and the run alone: every PS of the run signs alike.
    const seed = createHmac('sha256', this.key).update(runId ? `tabswarm weights signing key v2\0${runId}` : 'tabswarm weights signing key v1').digest();
    this.signingKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    this.verifyingKey = createPublicKey(this.signingKey);
    const raw = this.verifyingKey.export({ format: 'der', type: 'spki' }).subarray(-PUBLIC_KEY_BYTES);
    this.publicKey = raw.toString('base64');
    this.keyId = new Uint8Array(createHash('sha256').update(raw).digest().subarray(0, KEY_ID_BYTES));
  }

  idTag(workerId: number): string {
    return createHmac('sha256', this.key).update(`id:${workerId >>> 0}`).digest('hex');
  }

  verifyIdTag(workerId: number, tag: string): boolean {
    if (!/^[0-9a-f]{64}$/.test(tag)) return false;
    return timingSafeEqual(Buffer.from(this.idTag(workerId), 'hex'), Buffer.from(tag, 'hex'));
  }

  /** The Ed25519 signature of a version. @param weightBytes the little-endian float32 bytes of the weights */
  weightsTag(layoutHash: number, version: number, record: readonly AppliedRecordEntry[], weightBytes: Uint8Array): Uint8Array {
    return new Uint8Array(sign(null, message(layoutHash, version, record, weightBytes), this.signingKey));
  }

  verifyWeightsTag(tag: Uint8Array, layoutHash: number, version: number, record: readonly AppliedRecordEntry[], weightBytes: Uint8Array): boolean {
    if (tag.length !== TAG_BYTES) return false;
    return verify(null, message(layoutHash, version, record, weightBytes), this.verifyingKey, tag);
  }

  /** True when a copy names a signing key other than this run's (another run, or another secret). */
  fromOtherKey(keyId: Uint8Array | undefined): boolean {
    return otherKey(keyId, this.keyId);
  }
}

function message(layoutHash: number, version: number, record: readonly AppliedRecordEntry[], weightBytes: Uint8Array): Uint8Array {
  return signedMessage(layoutHash, version, record, createHash('sha256').update(weightBytes).digest());
}
