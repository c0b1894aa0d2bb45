// Which invocation an early-start recipe belongs to (src/prestart.ts).
import { invocationKey, sameButRunDir } from '../src/prestart';

const bundle = __filename;
const env = { PATH: '/usr/bin', SMOLVM_HOME: '/h', HOME: '/root' };

describe('invocationKey', () => {
  const key = (args: string[], cwd = '/w', e: NodeJS.ProcessEnv = env) => invocationKey(args, cwd, e, bundle);

  it('names the flags before --, not the command after it', () => {
    const base = key(['machine', 'run', '--cpus', '1', '--', 'true']);
    expect(key(['machine', 'run', '--cpus', '1', '--', 'echo', 'hi'])).toBe(base);
    expect(key(['machine', 'run', '--cpus', '2', '--', 'true'])).not.toBe(base);
    expect(key(['machine', 'run', '--cpus', '1', '--debug', '--', 'true'])).not.toBe(base);
  });

  it('depends on the working directory (Smolfile) and the environment that can change the VM, not on the rest', () => {
    const args = ['machine', 'run', '--', 'true'];
    const base = key(args);
    expect(key(args, '/elsewhere')).not.toBe(base);
    expect(key(args, '/w', { ...env, SMOLVM_HOME: '/other' })).not.toBe(base);
    expect(key(args, '/w', { ...env, SMOLVM_KERNEL: '/k' })).not.toBe(base);
    expect(key(args, '/w', { ...env, PATH: '/opt/qemu/bin:/usr/bin' })).not.toBe(base);
    expect(
      key(args, '/w', { ...env, SMOLVM_TIMINGS: '/t.json', SMOLVM_NO_EARLY_START: '1', TERM: 'xterm', LANG: 'C' }),
    ).toBe(base);
  });
});

describe('sameButRunDir', () => {
  const recipe = (run: string, extra = '') =>
    JSON.stringify({ v: 1, driver: 'kvm', restore: { runDir: run, args: [`${run}/agent.sock${extra}`] } });

  it('recipes of two runs differ only in their run directories', () => {
    expect(sameButRunDir(recipe('/r/vm-a'), recipe('/r/vm-b'))).toBe(true);
    expect(sameButRunDir(recipe('/r/vm-a'), recipe('/r/vm-b', ',x'))).toBe(false);
    expect(sameButRunDir('not json', 'not json')).toBe(true);
    expect(sameButRunDir('not json', recipe('/r/vm-a'))).toBe(false);
  });
});
