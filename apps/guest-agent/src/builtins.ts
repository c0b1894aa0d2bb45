// Built-in modules Node does not vouch for inside a user startup snapshot (it warns that their
// state may be out of sync after deserialization). They are loaded on first use instead, which
// is always after deserialization.
/* eslint-disable @typescript-eslint/no-require-imports */
type ChildProcessModule = typeof import('node:child_process');
type TtyModule = typeof import('node:tty');
type ModuleModule = typeof import('node:module');

export const childProcess = (): ChildProcessModule => require('node:child_process') as ChildProcessModule;
export const tty = (): TtyModule => require('node:tty') as TtyModule;
export const nodeModule = (): ModuleModule => require('node:module') as ModuleModule;
