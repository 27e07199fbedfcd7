/**
 * ZooKeeper's four-letter commands (`ruok`, `srvr`, `mntr`, ...) over a plain TCP connection to
 * the client port; the server writes its answer and closes. They must be whitelisted in zoo.cfg
 * (`4lw.commands.whitelist`), which the launcher does.
 */
import { connect } from 'node:net';

/** Sends `command` and resolves with the whole answer; rejects on a socket error or after `timeoutMs`. */
export function fourLetter(host: string, port: number, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${command} to ${host}:${port}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.end(command));
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve(answer);
    });
  });
}

/** `imok` means the process runs; it says nothing about a quorum. */
export async function isOk(host: string, port: number): Promise<boolean> {
  return (await fourLetter(host, port, 'ruok').catch(() => '')) === 'imok';
}

/** 'standalone' | 'leader' | 'follower' | 'observer' once the server serves clients, else undefined. */
export async function serverMode(host: string, port: number): Promise<string | undefined> {
  const srvr = await fourLetter(host, port, 'srvr').catch(() => '');
  return /^Mode: (\w+)/m.exec(srvr)?.[1];
}
