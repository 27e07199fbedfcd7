/**
 * Znode paths and data, checked the same way for both backends (ZooKeeper's rules: absolute,
 * no empty segment, no trailing slash, no '.' or '..' segments; data at most 1 MiB).
 */
import { TabswarmError } from '../../shared/errors.ts';

export const MAX_DATA_BYTES = 1024 * 1024;

export function checkPath(op: string, path: string): void {
  const bad = (detail: string) => new TabswarmError('COORD_BAD_ARGUMENT', { op, detail: `path '${path}' ${detail}` });
  if (typeof path !== 'string' || !path.startsWith('/')) throw bad('must start with /');
  if (path === '/') return;
  if (path.endsWith('/')) throw bad('must not end with /');
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') throw bad('has an empty segment');
    if (segment === '.' || segment === '..') throw bad(`has a '${segment}' segment`);
    if (segment.includes('\u0000')) throw bad('has a NUL character');
  }
}

export function checkData(op: string, data: string): void {
  if (typeof data !== 'string') throw new TabswarmError('COORD_BAD_ARGUMENT', { op, detail: 'data must be a string' });
  const bytes = Buffer.byteLength(data, 'utf8');
  if (bytes > MAX_DATA_BYTES) throw new TabswarmError('COORD_BAD_ARGUMENT', { op, detail: `data of ${bytes} bytes exceeds ${MAX_DATA_BYTES}` });
}

export function joinPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** '/a', '/a/b', '/a/b/c' for '/a/b/c'. */
export function ancestry(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf('/', 1); i !== -1; i = path.indexOf('/', i + 1)) out.push(path.slice(0, i));
  if (path !== '/') out.push(path);
  return out;
}

/** ZooKeeper appends a sequence number as 10 zero-padded digits. */
export function formatSequence(n: number): string {
  return String(n).padStart(10, '0');
}

/** The sequence number of a sequential znode's name, or undefined. */
export function sequenceOf(name: string): number | undefined {
  const m = /(\d{10})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
