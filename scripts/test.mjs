// Runs every *.test.ts under shared/, server/, client/ and test/ with Node's test runner (under
// tsx), one file at a time: the cross-process suites start servers and browsers, and this is a
// 2-core machine. Extra arguments are passed through (e.g. a file list, or --test-name-pattern).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
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
const files = args.filter((a) => a.endsWith('.ts'));
const flags = args.filter((a) => !a.endsWith('.ts'));
const targets = files.length > 0 ? files : ['shared', 'server', 'client', 'test'].flatMap(find).sort();
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...flags, ...targets], { stdio: 'inherit' });
process.exit(result.status ?? 1);
