// --ssh-agent relay benchmark (issue 14): what the request filter costs a client of the forwarded
// agent, against the plain byte relay it replaced and against the agent itself, in the same run,
// interleaved. No VM: the relays serve unix sockets in this process as they serve guest streams.
// One sample = `rounds` times what `ssh` asks per login (list identities, sign 1 KiB) through
// ssh2's agent client (a connection per request), against a real ssh-agent holding an ed25519 key.
//   node tools/run-ts.mjs tools/bench/ssh-agent.ts [runs=15] [rounds=20]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { OpenSSHAgent, type ParsedKey } from 'ssh2';
import { sshAgentSetup } from '../../libs/runtime/src/network';
import { report, type Series } from './lib/stats';

const runs = Number(process.argv[2] ?? 15);
const rounds = Number(process.argv[3] ?? 20);

function listen(socketPath: string, onConnection: (conn: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  return new Promise((resolve) => server.listen(socketPath, () => resolve(server)));
}

/** Milliseconds for `rounds` logins' worth of agent use through `socketPath`. */
async function sample(socketPath: string, data: Buffer): Promise<number> {
  const agent = new OpenSSHAgent(socketPath);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) {
    const keys = await new Promise<unknown[]>((resolve, reject) =>
      agent.getIdentities((err, k) => (err ? reject(err) : resolve(k ?? []))),
    );
    if (keys.length !== 1) throw new Error(`expected one key, the agent listed ${keys.length}`);
    // OpenSSHAgent lists parsed keys.
    const key = keys[0] as ParsedKey;
    await new Promise<Buffer>((resolve, reject) =>
      agent.sign(key, data, {}, (err, sig) => (err || !sig ? reject(err ?? new Error('no signature')) : resolve(sig))),
    );
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-sshagent-'));
  const hostSock = path.join(dir, 'agent.sock');
  let agentPid: number | undefined;
  const servers: net.Server[] = [];
  try {
    const started = spawnSync('ssh-agent', ['-a', hostSock], { encoding: 'utf8' });
    if (started.status !== 0) throw new Error(`ssh-agent: ${started.stderr}`);
    agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(started.stdout)?.[1]);
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'key')]);
    const add = spawnSync('ssh-add', ['-q', path.join(dir, 'key')], {
      env: { ...process.env, SSH_AUTH_SOCK: hostSock },
      encoding: 'utf8',
    });
    if (add.status !== 0) throw new Error(`ssh-add: ${add.stderr}`);

    // The relay before the filter: bytes both ways.
    servers.push(
      await listen(path.join(dir, 'pipe.sock'), (conn) => {
        const agent = net.connect(hostSock);
        conn.pipe(agent);
        agent.pipe(conn);
        agent.on('error', () => conn.destroy());
        conn.on('error', () => agent.destroy());
      }),
    );
    const { relay } = sshAgentSetup({ SSH_AUTH_SOCK: hostSock });
    servers.push(await listen(path.join(dir, 'filter.sock'), (conn) => relay({ input: conn, output: conn })));

    const cases = [
      { label: 'host agent, direct', socket: hostSock },
      { label: 'plain relay (before)', socket: path.join(dir, 'pipe.sock') },
      { label: 'filtered relay (now)', socket: path.join(dir, 'filter.sock') },
    ];
    const data = Buffer.alloc(1024, 7);
    for (const c of cases) await sample(c.socket, data);
    const series: Series[] = cases.map((c) => ({ label: c.label, samples: [] }));
    for (let i = 0; i < runs; i++)
      for (const [j, c] of cases.entries()) series[j].samples.push(await sample(c.socket, data));
    report(
      `ssh-agent: ${rounds} x (list identities, sign 1 KiB), a connection each, per sample, ${runs} interleaved runs`,
      series,
      'ms',
      series[1],
    );
  } finally {
    for (const s of servers) s.close();
    if (agentPid) process.kill(agentPid);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
