// What to run, as whom, where and with which environment — checked before spawning so that the
// host gets a precise error code (command-not-found -> 127, permission-denied -> 126).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentRequestError, type ExecRequest } from '@smolvm/agent-protocol';
import { resolveUser, type Credentials } from './users';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface PreparedCommand {
  /** Absolute path of the program. */
  file: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  creds: Credentials;
}

function isExecutableFile(p: string): 'ok' | 'missing' | 'not-executable' {
  // No exception for the PATH entries that do not have the program: the common case.
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(p, { throwIfNoEntry: false });
  } catch {
    return 'missing';
  }
  if (!st) return 'missing';
  if (!st.isFile()) return 'not-executable';
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return 'ok';
  } catch {
    return 'not-executable';
  }
}

export function findProgram(name: string, searchPath: string, cwd: string): string {
  if (name.includes('/')) {
    const file = path.resolve(cwd, name);
    const state = isExecutableFile(file);
    if (state === 'missing')
      throw new AgentRequestError('exec', 'command-not-found', `${name}: no such file or directory`);
    if (state === 'not-executable')
      throw new AgentRequestError('exec', 'permission-denied', `${name}: permission denied`);
    return file;
  }
  let denied = false;
  for (const dir of searchPath.split(':')) {
    const file = path.resolve(cwd, dir || '.', name);
    const state = isExecutableFile(file);
    if (state === 'ok') return file;
    if (state === 'not-executable' && fs.existsSync(file) && !fs.statSync(file).isDirectory()) denied = true;
  }
  if (denied) throw new AgentRequestError('exec', 'permission-denied', `${name}: permission denied`);
  throw new AgentRequestError('exec', 'command-not-found', `${name}: command not found`);
}

export function prepareCommand(req: ExecRequest, root = '/'): PreparedCommand {
  const creds = resolveUser(req.user, root);
  const env: Record<string, string> = { PATH: DEFAULT_PATH, HOSTNAME: os.hostname(), HOME: creds.home };
  if (req.tty) env.TERM = req.tty.term ?? 'xterm-256color';
  Object.assign(env, req.env);
  const cwd = req.cwd ?? '/';
  if (!path.isAbsolute(cwd))
    throw new AgentRequestError('exec', 'bad-workdir', `working directory '${cwd}' is not absolute`);
  let isDir = false;
  try {
    isDir = fs.statSync(cwd).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new AgentRequestError('exec', 'bad-workdir', `working directory ${cwd} does not exist`);
  const file = findProgram(req.argv[0], env.PATH, cwd);
  return { file, argv: req.argv, env, cwd, creds };
}

/** Spawn options that switch user only when there is something to switch. */
export function identity(creds: Credentials): { uid?: number; gid?: number } {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return creds.uid === uid && creds.gid === gid ? {} : { uid: creds.uid, gid: creds.gid };
}

export function signalNumber(name: string): number {
  const n = (os.constants.signals as Record<string, number | undefined>)[name];
  if (n === undefined) throw new AgentRequestError('signal', 'bad-request', `unknown signal ${name}`);
  return n;
}

function spawnError(err: NodeJS.ErrnoException, name: string): AgentRequestError {
  if (err.code === 'ENOENT') return new AgentRequestError('exec', 'command-not-found', `${name}: command not found`);
  if (err.code === 'EACCES' || err.code === 'EPERM')
    return new AgentRequestError('exec', 'permission-denied', `${name}: ${err.code}`);
  return new AgentRequestError('exec', 'internal', `${name}: ${err.message}`);
}

/** A spawn that threw: errno errors (ENOENT, EACCES...) become the request's error codes. */
export function spawnFailed(err: unknown, name: string): Error {
  return typeof (err as NodeJS.ErrnoException).code === 'string'
    ? spawnError(err as NodeJS.ErrnoException, name)
    : (err as Error);
}
