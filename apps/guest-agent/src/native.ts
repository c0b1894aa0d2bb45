// Loads native modules (koffi) at run time from beside the agent, never at bundle or snapshot
// time: a V8 startup snapshot can hold only JavaScript, and the bundle keeps koffi external
// because its .node file ships next to it in the agent image.
import path from 'node:path';
import { nodeModule } from './builtins';

/** Where the agent's files are: the image sets SMOLVM_AGENT_DIR; tests resolve from the sources. */
export function agentDir(): string {
  return process.env.SMOLVM_AGENT_DIR ?? __dirname;
}

export function requireNative<T>(name: string): T {
  return nodeModule().createRequire(path.join(agentDir(), 'agent.js'))(name) as T;
}
