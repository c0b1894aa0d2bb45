import { UsageError } from '@smolvm/common';
import {
  DEFAULT_CPUS,
  DEFAULT_MEMORY_MIB,
  DEFAULT_NET,
  DEFAULT_OVERLAY_GIB,
  DEFAULT_STORAGE_GIB,
  applyImageConfig,
  mergeRunOptions,
  parseSmolfile,
  resolveArtifactProfile,
  resolveRunConfig,
  type ImageRunSettings,
  type RunConfig,
} from '../src';
import { thrown } from './helpers';
import { REFERENCE_SMOLFILE } from './fixtures';

const smol = (text: string) => parseSmolfile(text, '/proj/Smolfile');
const IMAGE: ImageRunSettings = {
  entrypoint: ['/docker-entrypoint.sh'],
  cmd: ['python3'],
  env: ['PATH=/usr/bin', 'LANG=C.UTF-8', 'PORT=1'],
  workingDir: '/srv',
  user: 'app',
};

describe('defaults', () => {
  it('are the documented values', () => {
    expect([DEFAULT_CPUS, DEFAULT_MEMORY_MIB, DEFAULT_STORAGE_GIB, DEFAULT_OVERLAY_GIB, DEFAULT_NET]).toEqual([
      4,
      8192,
      20,
      2,
      false,
    ]);
  });

  it('a bare run with nothing set is a bare Alpine VM with defaults and no network', () => {
    const expected: RunConfig = {
      entrypoint: [],
      cmd: [],
      argv: [],
      env: [],
      cpus: 4,
      memoryMib: 8192,
      storageGib: 20,
      overlayGib: 2,
      network: { enabled: false, allowHosts: [], allowCidrs: [] },
      sshAgent: false,
      volumes: [],
      ports: [],
      init: [],
    };
    expect(resolveRunConfig({})).toEqual(expected);
  });
});

describe('merge rules of the reference', () => {
  it('image: --image > Smolfile image > none', () => {
    expect(mergeRunOptions({ image: 'ubuntu' }, smol('image = "alpine"')).image).toEqual({
      registry: 'docker.io',
      repository: 'library/ubuntu',
    });
    expect(mergeRunOptions({}, smol('image = "alpine:3"')).image).toEqual({
      registry: 'docker.io',
      repository: 'library/alpine',
      tag: '3',
    });
    expect(mergeRunOptions({}, smol('')).image).toBeUndefined();
  });

  it('entrypoint: Smolfile > image metadata', () => {
    expect(resolveRunConfig({}, smol('entrypoint = ["/app/run"]'), IMAGE).entrypoint).toEqual(['/app/run']);
    expect(resolveRunConfig({}, smol(''), IMAGE).entrypoint).toEqual(['/docker-entrypoint.sh']);
  });

  it('cmd: trailing args > Smolfile cmd > image metadata', () => {
    expect(resolveRunConfig({ command: ['echo', 'hi'] }, smol('cmd = ["serve"]'), IMAGE).cmd).toEqual(['echo', 'hi']);
    expect(resolveRunConfig({ command: [] }, smol('cmd = ["serve"]'), IMAGE).cmd).toEqual(['serve']);
    expect(resolveRunConfig({}, smol(''), IMAGE).cmd).toEqual(['python3']);
  });

  it('argv is entrypoint then cmd; a Smolfile entrypoint keeps the image CMD, as the reference states', () => {
    expect(resolveRunConfig({}, smol('entrypoint = ["/app/run"]'), IMAGE).argv).toEqual(['/app/run', 'python3']);
    expect(resolveRunConfig({ command: ['-v'] }, smol('entrypoint = ["/app/run"]'), IMAGE).argv).toEqual([
      '/app/run',
      '-v',
    ]);
  });

  it('env: image env, then top-level, then [dev], then -e; later wins per name, first position kept', () => {
    const file = smol('env = ["PORT=8080", "DEBUG=1"]\n[dev]\nenv = ["APP_MODE=dev", "DEBUG=2"]');
    const cfg = resolveRunConfig({ env: ['DEBUG=3', 'TOKEN', 'NEW=x'], hostEnv: { TOKEN: 't0k' } }, file, IMAGE);
    expect(cfg.env).toEqual([
      { name: 'PATH', value: '/usr/bin' },
      { name: 'LANG', value: 'C.UTF-8' },
      { name: 'PORT', value: '8080' },
      { name: 'DEBUG', value: '3' },
      { name: 'APP_MODE', value: 'dev' },
      { name: 'TOKEN', value: 't0k' },
      { name: 'NEW', value: 'x' },
    ]);
  });

  it('volumes: [dev].volumes + -v, -v paths resolve against cwd, same guest path: CLI wins in place', () => {
    const file = smol('[dev]\nvolumes = ["./src:/app", "./data:/data"]');
    const merged = mergeRunOptions({ volumes: ['./other:/app:ro', 'cache:/cache'], cwd: '/home/me' }, file);
    expect(merged.volumes).toEqual([
      { hostPath: '/home/me/other', guestPath: '/app', readOnly: true },
      { hostPath: '/proj/data', guestPath: '/data', readOnly: false },
      { hostPath: '/home/me/cache', guestPath: '/cache', readOnly: false },
    ]);
  });

  it('ports: [dev].ports + -p, same host port: CLI wins', () => {
    const merged = mergeRunOptions({ ports: ['9090:90', '8080:81'] }, smol('[dev]\nports = ["8080:8080", "3000"]'));
    expect(merged.ports).toEqual([
      { hostPort: 8080, guestPort: 81 },
      { hostPort: 3000, guestPort: 3000 },
      { hostPort: 9090, guestPort: 90 },
    ]);
  });

  it('init: [dev].init then --init, all kept in order', () => {
    expect(mergeRunOptions({ init: ['b', 'a'] }, smol('[dev]\ninit = ["a", "c"]')).init).toEqual(['a', 'c', 'b', 'a']);
  });

  it('cpus/memory: CLI > Smolfile > defaults; storage/overlay likewise', () => {
    const file = smol('cpus = 2\nmemory = 1024\nstorage = 40\noverlay = 4');
    expect(mergeRunOptions({ cpus: 8, memory: '2G', storage: '30', overlay: 3 }, file)).toMatchObject({
      cpus: 8,
      memoryMib: 2048,
      storageGib: 30,
      overlayGib: 3,
    });
    expect(mergeRunOptions({}, file)).toMatchObject({ cpus: 2, memoryMib: 1024, storageGib: 40, overlayGib: 4 });
    expect(mergeRunOptions({}, smol(''))).toMatchObject({ cpus: 4, memoryMib: 8192, storageGib: 20, overlayGib: 2 });
  });

  it('workdir: -w > [dev].workdir > top-level workdir > image', () => {
    const both = smol('workdir = "/top"\n[dev]\nworkdir = "/dev"');
    expect(resolveRunConfig({ workdir: '/cli/' }, both, IMAGE).workdir).toBe('/cli');
    expect(resolveRunConfig({}, both, IMAGE).workdir).toBe('/dev');
    expect(resolveRunConfig({}, smol('workdir = "/top"'), IMAGE).workdir).toBe('/top');
    expect(resolveRunConfig({}, smol(''), IMAGE).workdir).toBe('/srv');
    expect(resolveRunConfig({}, smol(''), { workingDir: '' }).workdir).toBeUndefined();
  });

  it('network: off by default; --net or net = true switch it on; allow lists imply it and merge', () => {
    expect(mergeRunOptions({}, smol('')).network).toEqual({ enabled: false, allowHosts: [], allowCidrs: [] });
    expect(mergeRunOptions({ net: true }).network.enabled).toBe(true);
    expect(mergeRunOptions({}, smol('net = true')).network.enabled).toBe(true);
    expect(mergeRunOptions({ net: false }, smol('net = true')).network.enabled).toBe(true);
    const merged = mergeRunOptions(
      { allowHosts: ['API.stripe.com', 'github.com'], allowCidrs: ['192.168.0.0/16'] },
      smol('[network]\nallow_hosts = ["api.stripe.com"]\nallow_cidrs = ["10.0.0.0/8"]'),
    );
    expect(merged.network.enabled).toBe(true);
    expect(merged.network.allowHosts).toEqual(['api.stripe.com', 'github.com']);
    expect(merged.network.allowCidrs.map((c) => c.cidr)).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(mergeRunOptions({}, smol('[network]\nallow_cidrs = ["10.0.0.0/8"]')).network.enabled).toBe(true);
    expect(mergeRunOptions({ allowHosts: ['a.io'] }).network).toEqual({
      enabled: true,
      allowHosts: ['a.io'],
      allowCidrs: [],
    });
  });

  it('--outbound-localhost-only allows 127.0.0.0/8 and ::1 and implies networking', () => {
    const network = mergeRunOptions({ outboundLocalhostOnly: true }).network;
    expect(network.enabled).toBe(true);
    expect(network.allowCidrs.map((c) => c.cidr)).toEqual(['127.0.0.0/8', '::1/128']);
  });

  it('ssh agent: --ssh-agent or [auth] ssh_agent', () => {
    expect(mergeRunOptions({}).sshAgent).toBe(false);
    expect(mergeRunOptions({ sshAgent: true }).sshAgent).toBe(true);
    expect(mergeRunOptions({}, smol('[auth]\nssh_agent = true')).sshAgent).toBe(true);
  });

  it('user comes from the image; health passes through', () => {
    const cfg = resolveRunConfig({}, smol('[health]\nexec = ["true"]'), IMAGE);
    expect(cfg.user).toBe('app');
    expect(cfg.health?.exec).toEqual(['true']);
  });

  it('the full reference Smolfile resolves to the documented run config', () => {
    const cfg = resolveRunConfig({ cwd: '/cwd' }, parseSmolfile(REFERENCE_SMOLFILE, '/proj/Smolfile'), {
      cmd: ['python3'],
      env: ['PATH=/bin'],
    });
    expect(cfg).toMatchObject({
      image: { registry: 'docker.io', repository: 'library/python', tag: '3.12-alpine' },
      argv: ['/app/run', 'serve'],
      workdir: '/app',
      cpus: 2,
      memoryMib: 1024,
      storageGib: 40,
      overlayGib: 4,
      sshAgent: true,
      init: ['pip install -r requirements.txt'],
      volumes: [{ hostPath: '/proj/src', guestPath: '/app', readOnly: false }],
      ports: [{ hostPort: 8080, guestPort: 8080 }],
    });
    expect(cfg.env.map((e) => `${e.name}=${e.value}`)).toEqual(['PATH=/bin', 'PORT=8080', 'DEBUG=1', 'APP_MODE=dev']);
    expect(cfg.network.allowHosts).toEqual(['api.stripe.com']);
  });

  it('invalid CLI values are UsageErrors from the same parsers', () => {
    const cases: Array<[Parameters<typeof mergeRunOptions>[0], string]> = [
      [{ image: 'Alpine' }, 'invalid image reference "Alpine": repository component "Alpine" must be lowercase'],
      [{ cpus: '0' }, 'invalid CPU count "0": must be between 1 and 64'],
      [{ memory: '10' }, 'invalid memory size "10": 10 MiB is below the minimum of 64 MiB'],
      [{ ports: ['0'] }, 'invalid port mapping "0": port 0 is out of range 1-65535'],
      [{ volumes: ['/x'] }, 'invalid volume "/x": missing ":GUEST" part'],
      [
        { env: ['NOPE_NOT_SET_ANYWHERE'], hostEnv: {} },
        'invalid environment variable "NOPE_NOT_SET_ANYWHERE": no "=" and NOPE_NOT_SET_ANYWHERE is not set on the host',
      ],
      [{ workdir: 'rel' }, 'invalid workdir "rel": must be absolute (start with /)'],
      [
        { allowHosts: ['*.x.com'] },
        'invalid hostname "*.x.com": wildcards are not supported because hosts are resolved once at VM start',
      ],
      [
        { allowCidrs: ['10.0.0.1/8'] },
        'invalid CIDR "10.0.0.1/8": host bits are set; the network containing it is 10.0.0.0/8',
      ],
      [{ init: [''] }, 'invalid init command "": it is empty'],
    ];
    for (const [cli, message] of cases) {
      const err = thrown(() => mergeRunOptions(cli));
      expect(err).toBeInstanceOf(UsageError);
      expect(err.message).toBe(message);
    }
  });

  it('applyImageConfig skips malformed image env entries and empty metadata', () => {
    const cfg = applyImageConfig(mergeRunOptions({}), { env: ['OK=1', 'BROKEN', '=x'], user: '' });
    expect(cfg.env).toEqual([{ name: 'OK', value: '1' }]);
    expect(cfg.argv).toEqual([]);
    expect(cfg.user).toBeUndefined();
  });
});

describe('resolveArtifactProfile (pack create)', () => {
  it('[artifact] overrides the top level; [dev] is ignored', () => {
    const profile = resolveArtifactProfile({}, parseSmolfile(REFERENCE_SMOLFILE, '/proj/Smolfile'));
    expect(profile).toEqual({
      image: { registry: 'docker.io', repository: 'library/python', tag: '3.12-alpine' },
      entrypoint: ['/app/run'],
      cmd: ['serve'],
      env: [
        { name: 'PORT', value: '8080' },
        { name: 'DEBUG', value: '1' },
      ],
      workdir: '/app',
      cpus: 4,
      memoryMib: 2048,
      storageGib: 40,
      overlayGib: 4,
      network: {
        enabled: true,
        allowHosts: ['api.stripe.com'],
        allowCidrs: [{ family: 4, address: '10.0.0.0', prefix: 8, cidr: '10.0.0.0/8' }],
      },
      sshAgent: true,
      health: {
        exec: ['curl', '-f', 'http://127.0.0.1:8080/health'],
        intervalMs: 10_000,
        timeoutMs: 2_000,
        retries: 3,
        startupGraceMs: 20_000,
      },
      platform: { os: 'linux', architecture: 'amd64' },
    });
  });

  it('CLI > [artifact] > top level > defaults', () => {
    const file = smol('cpus = 2\nmemory = 1024\nentrypoint = ["/top"]\n[artifact]\nmemory = 4096');
    expect(resolveArtifactProfile({}, file)).toMatchObject({ cpus: 2, memoryMib: 4096, entrypoint: ['/top'] });
    expect(
      resolveArtifactProfile({ cpus: '6', memory: '1G', image: 'alpine', platform: 'linux/arm64' }, file),
    ).toMatchObject({
      cpus: 6,
      memoryMib: 1024,
      image: { registry: 'docker.io', repository: 'library/alpine' },
      platform: { os: 'linux', architecture: 'arm64' },
    });
    expect(resolveArtifactProfile({})).toEqual({
      env: [],
      cpus: 4,
      memoryMib: 8192,
      storageGib: 20,
      overlayGib: 2,
      network: { enabled: false, allowHosts: [], allowCidrs: [] },
      sshAgent: false,
    });
  });

  it('applies image metadata like a run config', () => {
    const packed = applyImageConfig(resolveArtifactProfile({ image: 'python:3.12-alpine' }), {
      cmd: ['python3'],
      workingDir: '/',
    });
    expect(packed.argv).toEqual(['python3']);
    expect(packed.workdir).toBe('/');
  });

  it('rejects a bad --platform', () => {
    expect(thrown(() => resolveArtifactProfile({ platform: 'linux/mips' })).message).toBe(
      'invalid platform "linux/mips": architecture "mips" is not supported (supported: amd64, arm64)',
    );
  });
});
