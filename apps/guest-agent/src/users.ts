// `--user` resolution against the guest root's /etc/passwd and /etc/group, as container
// runtimes do it: a name must exist; a numeric uid need not (then gid 0 and home /).
import fs from 'node:fs';
import path from 'node:path';
import { AgentRequestError } from '@smolvm/agent-protocol';

export interface Credentials {
  uid: number;
  gid: number;
  home: string;
  name: string | null;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function readLines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n');
  } catch {
    return [];
  }
}

export function readPasswd(root: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of readLines(path.join(root, 'etc/passwd'))) {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid)) out.push({ name: f[0], uid, gid, home: f[5] || '/' });
  }
  return out;
}

export function readGroups(root: string): Array<{ name: string; gid: number }> {
  const out: Array<{ name: string; gid: number }> = [];
  for (const line of readLines(path.join(root, 'etc/group'))) {
    const f = line.split(':');
    if (f.length < 3 || line.startsWith('#')) continue;
    const gid = Number(f[2]);
    if (Number.isInteger(gid)) out.push({ name: f[0], gid });
  }
  return out;
}

const NUMERIC = /^\d+$/;

export function resolveUser(spec: string | undefined, root = '/'): Credentials {
  const passwd = readPasswd(root);
  if (spec === undefined || spec === '') {
    const rootEntry = passwd.find((e) => e.uid === 0);
    return { uid: 0, gid: 0, home: rootEntry?.home ?? '/root', name: rootEntry?.name ?? 'root' };
  }
  const [userPart, groupPart, ...rest] = spec.split(':');
  if (rest.length > 0 || userPart === '')
    throw new AgentRequestError('exec', 'unknown-user', `'${spec}' is not user, uid or uid:gid`);
  let creds: Credentials;
  if (NUMERIC.test(userPart)) {
    const uid = Number(userPart);
    const entry = passwd.find((e) => e.uid === uid);
    creds = entry
      ? { uid, gid: entry.gid, home: entry.home, name: entry.name }
      : { uid, gid: 0, home: '/', name: null };
  } else {
    const entry = passwd.find((e) => e.name === userPart);
    if (!entry) throw new AgentRequestError('exec', 'unknown-user', `no user '${userPart}' in the guest's /etc/passwd`);
    creds = { uid: entry.uid, gid: entry.gid, home: entry.home, name: entry.name };
  }
  if (groupPart !== undefined) {
    if (NUMERIC.test(groupPart)) creds.gid = Number(groupPart);
    else {
      const group = readGroups(root).find((g) => g.name === groupPart);
      if (!group)
        throw new AgentRequestError('exec', 'unknown-user', `no group '${groupPart}' in the guest's /etc/group`);
      creds.gid = group.gid;
    }
  }
  if (creds.uid > 0xfffffffe || creds.gid > 0xfffffffe)
    throw new AgentRequestError('exec', 'unknown-user', `'${spec}' is out of range`);
  return creds;
}
