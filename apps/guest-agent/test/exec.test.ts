import { AgentRequestError } from '@smolvm/agent-protocol';
import { collect, startHarness, waitFor, type Harness } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

const MB10 = 10 * 1024 * 1024;

describe('exec with pipes (real processes on this host)', () => {
  it('keeps 10 MB of stdout and 10 MB of stderr apart', async () => {
    const s = await h.client.exec({
      argv: ['sh', '-c', `(yes a | head -c ${MB10}) & (yes b | head -c ${MB10} >&2); wait`],
    });
    const [out, err] = await Promise.all([collect(s.stdout), collect(s.stderr)]);
    expect(out.length).toBe(MB10);
    expect(err.length).toBe(MB10);
    expect(out.toString('latin1').replace(/a\n/g, '')).toBe('');
    expect(err.toString('latin1').replace(/b\n/g, '')).toBe('');
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
  });

  it('pipes 10 MB of stdin through cat', async () => {
    const s = await h.client.exec({ argv: ['cat'], stdin: true });
    const input = Buffer.alloc(MB10);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7 + (i >> 11)) & 0xff;
    const out = collect(s.stdout);
    s.stdin.end(input);
    expect(Buffer.compare(await out, input)).toBe(0);
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
  });

  it('without stdin the process reads end-of-file at once', async () => {
    const s = await h.client.exec({ argv: ['wc', '-c'] });
    expect((await collect(s.stdout)).toString().trim()).toBe('0');
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
  });

  it('reports exit codes, death by signal, and delivers signals', async () => {
    const seven = await h.client.exec({ argv: ['sh', '-c', 'exit 7'] });
    await expect(seven.exit).resolves.toEqual({ code: 7, signal: null });
    const killed = await h.client.exec({ argv: ['sh', '-c', 'kill -TERM $$; sleep 5'] });
    await expect(killed.exit).resolves.toEqual({ code: null, signal: 'SIGTERM' });
    const sleeper = await h.client.exec({ argv: ['sleep', '30'] });
    await sleeper.signal('SIGKILL');
    await expect(sleeper.exit).resolves.toEqual({ code: null, signal: 'SIGKILL' });
    const other = await h.client.exec({ argv: ['sleep', '30'] });
    await expect(other.signal('SIGNOPE')).rejects.toMatchObject({ code: 'bad-request' });
    await other.signal('SIGINT');
    await expect(other.exit).resolves.toEqual({ code: null, signal: 'SIGINT' });
  });

  it('applies env on top of the defaults, cwd and user', async () => {
    const s = await h.client.exec({
      argv: ['sh', '-c', 'echo "$FOO|$HOME|$PATH"; pwd; id -u; id -g'],
      env: { FOO: 'bar baz' },
      cwd: '/tmp',
      user: 'nobody',
    });
    const lines = (await collect(s.stdout)).toString().trim().split('\n');
    expect(lines[0]).toMatch(/^bar baz\|\/nonexistent\|\/usr\/local\/sbin:/);
    expect(lines.slice(1)).toEqual(['/tmp', '65534', '65534']);
    const numeric = await h.client.exec({ argv: ['sh', '-c', 'id -u; id -g'], user: '1234:5678' });
    expect((await collect(numeric.stdout)).toString()).toBe('1234\n5678\n');
  });

  it.each([
    [{ argv: ['no-such-command-xyz'] }, 'command-not-found'],
    [{ argv: ['/etc/passwd'] }, 'permission-denied'],
    [{ argv: ['true'], cwd: '/no/such/dir' }, 'bad-workdir'],
    [{ argv: ['true'], user: 'no-such-user' }, 'unknown-user'],
  ])('refuses %j with %s', async (opts, code) => {
    const err = await h.client.exec(opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentRequestError);
    expect((err as AgentRequestError).code).toBe(code);
  });

  it('does not wait for a background child that keeps stdout open', async () => {
    const s = await h.client.exec({ argv: ['sh', '-c', 'sleep 30 & echo $!'] });
    const out = await collect(s.stdout);
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
    process.kill(Number(out.toString().trim()), 'SIGKILL');
  });
});

describe('exec on a pty', () => {
  it('is a terminal of the requested size, with stdout and stderr merged', async () => {
    const s = await h.client.exec({
      argv: ['sh', '-c', 'stty size; [ -t 0 ] && echo tty; echo err >&2'],
      tty: { rows: 33, cols: 101 },
    });
    const [out, err] = await Promise.all([collect(s.stdout), collect(s.stderr)]);
    expect(out.toString()).toBe('33 101\r\ntty\r\nerr\r\n');
    expect(err.length).toBe(0);
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
  });

  it('delivers ^C typed on the terminal to the foreground process', async () => {
    const s = await h.client.exec({
      argv: ['sh', '-c', 'echo ready; exec sleep 30'],
      stdin: true,
      tty: { rows: 24, cols: 80 },
    });
    await waitFor(s.stdout, 'ready');
    s.stdin.write('\x03');
    await expect(s.exit).resolves.toEqual({ code: null, signal: 'SIGINT' });
  });

  it('a shell traps ^C as SIGINT and keeps running', async () => {
    const script = 'trap "echo caught INT" INT; echo ready; while :; do sleep 0.05; done';
    const s = await h.client.exec({ argv: ['sh', '-c', script], stdin: true, tty: { rows: 24, cols: 80 } });
    await waitFor(s.stdout, 'ready');
    s.stdin.write('\x03');
    await waitFor(s.stdout, 'caught INT');
    await s.signal('SIGKILL');
    await expect(s.exit).resolves.toMatchObject({ signal: 'SIGKILL' });
  });

  it('resizes the terminal: the process sees SIGWINCH and the new size', async () => {
    const script = 'trap "stty size; exit 0" WINCH; echo ready; while :; do sleep 0.05; done';
    const s = await h.client.exec({ argv: ['sh', '-c', script], stdin: true, tty: { rows: 24, cols: 80 } });
    await waitFor(s.stdout, 'ready');
    await s.resize(50, 132);
    const out = await collect(s.stdout);
    expect(out.toString()).toContain('50 132');
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
  });

  it('takes input like a terminal and reports the size after a resize', async () => {
    const s = await h.client.exec({
      argv: ['sh', '-c', 'read line; echo "got $line"; stty size'],
      stdin: true,
      tty: { rows: 24, cols: 80 },
    });
    await s.resize(40, 90);
    s.stdin.write('hello\r');
    const out = (await collect(s.stdout)).toString();
    expect(out).toContain('got hello');
    expect(out).toContain('40 90');
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
  });
});
