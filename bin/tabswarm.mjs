#!/usr/bin/env node
// Entry point of the `tabswarm` command: runs the TypeScript CLI under tsx.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../server/cli.ts');
await main(process.argv.slice(2));
