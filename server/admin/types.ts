/**
 * The admin console's shapes moved to shared/admin-api.ts (the console page imports only from
 * shared/); this re-export keeps server-side importers (cluster supervisor, experiment
 * harness) compiling. New code imports from shared/admin-api.ts.
 */
export type {
  Capabilities, ClusterView, ConsoleState, EvalView, EventKind, NodeHealth, NodeRole, NodeView, RunEvent, RunSettings, Sample, Snapshot, WorkerView,
} from '../../shared/admin-api.ts';
