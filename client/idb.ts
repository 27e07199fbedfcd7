/**
 * IndexedDB storage for the worker page (available on plain-http LAN origins too, unlike Cache
 * Storage): the shard cache, and the worker state that must survive a reload during an outage.
 * Each tab keeps its own state under a tab id held in sessionStorage, which a reload keeps and
 * a new tab does not share.
 */
import type { ShardCache } from './data.ts';
import type { SavedState, StateStore } from './state.ts';

const DB = 'tabswarm';
const SHARDS = 'shards';
const STATE = 'state';

let db: Promise<IDBDatabase> | undefined;

function open(): Promise<IDBDatabase> {
  db ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 2);
    req.onupgradeneeded = () => {
      for (const store of [SHARDS, STATE]) if (!req.result.objectStoreNames.contains(store)) req.result.createObjectStore(store);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return db;
}

async function get<T>(store: string, key: string): Promise<T | undefined> {
  const d = await open();
  return new Promise((resolve, reject) => {
    const req = d.transaction(store, 'readonly').objectStore(store).get(key);
    req.onsuccess = () => resolve(req.result as T | undefined);
    req.onerror = () => reject(req.error);
  });
}

async function put(store: string, key: string, value: unknown): Promise<void> {
  const d = await open();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(store, 'readwrite');
    tx.objectStore(store).put(value, key);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
  });
}

export class IdbCache implements ShardCache {
  async get(key: string): Promise<Uint8Array | undefined> {
    const v = await get<ArrayBuffer>(SHARDS, key);
    return v instanceof ArrayBuffer ? new Uint8Array(v) : undefined;
  }
  async put(key: string, bytes: Uint8Array): Promise<void> {
    await put(SHARDS, key, bytes.slice().buffer);
  }
}

export class IdbState implements StateStore {
  private readonly key: string;
  constructor() {
    let tab = sessionStorage.getItem('tabswarm-tab');
    if (!tab) {
      tab = crypto.randomUUID();
      sessionStorage.setItem('tabswarm-tab', tab);
    }
    this.key = `worker:${tab}`;
  }
  load(): Promise<SavedState | undefined> {
    return get<SavedState>(STATE, this.key);
  }
  save(state: SavedState): Promise<void> {
    return put(STATE, this.key, state);
  }
  async loadTagged(): Promise<Uint8Array | undefined> {
    const v = await get<ArrayBuffer>(STATE, `${this.key}:tagged`);
    return v instanceof ArrayBuffer ? new Uint8Array(v) : undefined;
  }
  saveTagged(frame: Uint8Array): Promise<void> {
    return put(STATE, `${this.key}:tagged`, frame.slice().buffer);
  }
}
