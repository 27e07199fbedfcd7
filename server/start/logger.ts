/**
 * The PS's log as a person or a program wants it. `--log-format auto` (the default) writes
 * human-readable lines (pino-pretty: time, level, message, fields on one line) when stdout is a
 * terminal, and pino's JSON lines otherwise; `pretty` and `json` force one.
 *
 * The pretty log also leaves out Fastify's per-request pair ("incoming request", "request
 * completed") for requests that succeeded: workers report every 2 s, and a terminal would show
 * nothing else. Failed requests (status >= 400) and everything else stay. The JSON log keeps
 * every line, for programs.
 */
import { prettyFactory } from 'pino-pretty';

/** `auto` resolved against whether stdout is a terminal. */
export function resolveLogFormat(format: string, isTTY = Boolean(process.stdout.isTTY)): 'pretty' | 'json' {
  if (format === 'pretty' || format === 'json') return format;
  return isTTY ? 'pretty' : 'json';
}

/** Fastify's own line for every request; noise on a terminal when the request succeeded. */
export function isRoutineRequestLine(entry: { msg?: unknown; reqId?: unknown; res?: { statusCode?: unknown } }): boolean {
  if (entry.reqId === undefined) return false;
  if (entry.msg === 'incoming request') return true;
  return entry.msg === 'request completed' && typeof entry.res?.statusCode === 'number' && entry.res.statusCode < 400;
}

/** Where formatted log text goes; the status line (view.ts) swaps itself in once it starts. */
export interface LogSink {
  write(text: string): void;
}

/**
 * A stream for Fastify's `logger: { stream }` that turns each JSON line into a pretty one and
 * hands it to `sink()` (looked up per line, so the sink can change while the server runs).
 */
export function prettyStream(sink: () => LogSink, opts: { colorize?: boolean } = {}): { write(line: string): void } {
  const format = prettyFactory({ colorize: opts.colorize ?? true, translateTime: 'HH:MM:ss', ignore: 'pid,hostname,reqId', singleLine: true });
  return {
    write(line: string): void {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return void sink().write(line.endsWith('\n') ? line : `${line}\n`);
      }
      if (isRoutineRequestLine(entry)) return;
      sink().write(format(entry));
    },
  };
}

/** Fastify's `logger` option for a level and a resolved format. */
export function loggerOptions(level: string, format: 'pretty' | 'json', sink: () => LogSink): { level: string; stream?: { write(line: string): void } } {
  return format === 'json' ? { level } : { level, stream: prettyStream(sink, { colorize: Boolean(process.stdout.isTTY) }) };
}
