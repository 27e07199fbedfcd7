// Runs every *.test.ts under shared/, server/, client/ and test/ with Node's test runner (under
// tsx), one file at a time: the cross-process suites start servers and browsers, and this is a
// 2-core machine. Extra arguments are passed through (e.g. a file list, or --test-name-pattern).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...find(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const args = process.argv.slice(2);
// Arguments that name files or folders select tests; the rest are flags for the runner.
const paths = args.filter((a) => !a.startsWith('-') && existsSync(a));
const flags = args.filter((a) => !paths.includes(a));
const targets = (paths.length > 0 ? paths : ['shared', 'server', 'client', 'test'])
  .flatMap((p) => (statSync(p).isDirectory() ? find(p) : [p]))
  .sort();
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...flags, ...targets], { stdio: 'inherit' });
process.exit(result.status ?? 1);
