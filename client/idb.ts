/**
 * Shard cache in IndexedDB (available on plain-http LAN origins too, unlike Cache Storage).
 * Shards survive reloads, so a tab can train without the PS once it has its data.
 */
import type { ShardCache } from './data.ts';

const DB = 'tabswarm';
const STORE = 'shards';

export class IdbCache implements ShardCache {
  private db: Promise<IDBDatabase> | undefined;

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this.db;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const req = db.transaction(STORE, 'readonly').objectStore(STORE).get(key);
      req.onsuccess = () => resolve(req.result instanceof ArrayBuffer ? new Uint8Array(req.result) : undefined);
      req.onerror = () => reject(req.error);
    });
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const db = await this.open();
    const copy = bytes.slice().buffer;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).put(copy, key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }
}
