// Before the tests: system packages (as root, installed idempotently; otherwise the exact
// command to run is printed), the worker page bundle, and a strict type check.
import { spawnSync } from 'node:child_process';

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (process.getuid?.() === 0) run('bash', ['scripts/install-system-deps.sh']);
else {
  const r = spawnSync('bash', ['scripts/install-system-deps.sh'], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('pretest: the browser tests need the packages named above; install them, then run `npm test` again (`npx tabswarm doctor` checks everything).');
    process.exit(1);
  }
}
run(process.execPath, ['scripts/build.mjs']);
run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.']);
