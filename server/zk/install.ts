/**
 * Finds what a local ZooKeeper needs: a `java` and the jars of Debian's `zookeeper` package
 * (`libzookeeper-java` puts them in /usr/share/java). Missing either is ZK_MISSING, which names
 * the package to install.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { TabswarmError } from '../../shared/errors.ts';

export interface ZooKeeperInstall {
  /** The java executable. */
  readonly java: string;
  /** Classpath entries after the generated config folder: zookeeper.jar, then a log4j binding. */
  readonly classpath: readonly string[];
}

export interface InstallOptions {
  /** The java executable, a path or a name looked up on PATH. @default env JAVA, else 'java' */
  java?: string;
  /** Folder holding zookeeper.jar and the logging jars. @default '/usr/share/java' */
  jarDir?: string;
}

/**
 * zookeeper.jar's manifest names its own dependencies (netty, jute, slf4j-api, ...). The
 * logging pair is added explicitly: with `/usr/share/java/*` on the classpath slf4j would pick
 * one of the several bindings Debian installs there, and without one it logs nothing, so a
 * server that fails to start would leave no log to quote.
 */
const LOGGING_JARS = ['slf4j-log4j12.jar', 'log4j-1.2.jar'];

export function findZooKeeper(options: InstallOptions = {}): ZooKeeperInstall {
  const javaName = options.java ?? process.env.JAVA ?? 'java';
  const java = resolveExecutable(javaName);
  if (!java) throw new TabswarmError('ZK_MISSING', { what: 'java', path: javaName.includes('/') ? javaName : `PATH (${process.env.PATH ?? ''})` });
  const jarDir = options.jarDir ?? '/usr/share/java';
  const jar = join(jarDir, 'zookeeper.jar');
  if (!existsSync(jar)) throw new TabswarmError('ZK_MISSING', { what: 'zookeeper.jar', path: jar });
  const logging = LOGGING_JARS.map((name) => join(jarDir, name)).filter((path) => existsSync(path));
  return { java, classpath: [jar, ...logging] };
}

function resolveExecutable(name: string): string | undefined {
  const candidates = name.includes('/') || isAbsolute(name) ? [name] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name));
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here; try the next
    }
  }
  return undefined;
}
