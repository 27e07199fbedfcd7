// Bootstraps the TypeScript evaluation thread under tsx, whatever way the parent was started.
import { register } from 'tsx/esm/api';
register();
await import('./thread.ts');
