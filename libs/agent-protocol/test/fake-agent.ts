// A scripted in-process agent for protocol tests: `cat`, `split`, `flood` and `exit` programs
// implemented directly on the stream objects, no processes.
import {
  AgentRequestError,
  AgentServer,
  type AgentHandlers,
  type ExecIo,
  type ExecProcess,
  type ExecRequest,
  type ExitStatus,
} from '../src';
import type { Duplex } from 'node:stream';
import { pattern } from './pair';

export interface FakeAgentLog {
  signals: string[];
  resizes: Array<[number, number]>;
  calls: string[];
  /** Bytes `flood` got accepted by stdout so far. */
  flooded: number;
}

export function fakeHandlers(log: FakeAgentLog): AgentHandlers {
  return {
    async exec(req: ExecRequest, io: ExecIo): Promise<ExecProcess> {
      log.calls.push(`exec ${req.argv.join(' ')}`);
      let finish!: (s: ExitStatus) => void;
      const exited = new Promise<ExitStatus>((resolve) => (finish = resolve));
      const proc: ExecProcess = {
        pid: 4242,
        exited,
        signal: (name) => {
          log.signals.push(name);
          if (name === 'SIGBOGUS') throw new AgentRequestError('signal', 'bad-request', 'unknown signal SIGBOGUS');
          io.stdout.end();
          io.stderr.end();
          finish({ code: null, signal: name });
        },
        resize: (rows, cols) => log.resizes.push([rows, cols]),
      };
      const [program, ...args] = req.argv;
      switch (program) {
        case 'missing':
          throw new AgentRequestError('exec', 'command-not-found', `${program}: not found`);
        case 'cat': // stdin -> stdout, byte count -> stderr
          if (!io.stdin) throw new Error('cat needs stdin');
          {
            let n = 0;
            io.stdin.on('data', (c: Buffer) => (n += c.length));
            io.stdin.pipe(io.stdout);
            io.stdin.on('end', () => {
              io.stderr.end(`${n}\n`);
              io.stdout.on('finish', () => finish({ code: 0, signal: null }));
            });
          }
          break;
        case 'split': {
          // N bytes of pattern to stdout and to stderr
          const n = Number(args[0]);
          const write = (w: NodeJS.WritableStream, seed: number) =>
            new Promise<void>((resolve) => w.end(pattern(n, seed), () => resolve()));
          void Promise.all([write(io.stdout, 1), write(io.stderr, 2)]).then(() =>
            finish({ code: Number(args[1] ?? 0), signal: null }),
          );
          break;
        }
        case 'flood': {
          // writes 64 KiB chunks until N bytes, honouring backpressure
          const total = Number(args[0]);
          const chunk = pattern(64 * 1024, 3);
          const step = () => {
            while (log.flooded < total) {
              log.flooded += chunk.length;
              if (!io.stdout.write(chunk)) {
                io.stdout.once('drain', step);
                return;
              }
            }
            io.stdout.end();
            io.stderr.end();
            io.stdout.on('finish', () => finish({ code: 0, signal: null }));
          };
          step();
          break;
        }
        case 'env':
          io.stdout.end(
            JSON.stringify({ env: req.env, cwd: req.cwd ?? null, user: req.user ?? null, tty: req.tty ?? null }),
          );
          io.stderr.end();
          finish({ code: 0, signal: null });
          break;
        case 'wait': // runs until signalled
          break;
        case 'lost': // the agent loses the process: the server reports an exit with an error
          io.stdout.end();
          io.stderr.end();
          return { ...proc, exited: Promise.reject(new Error('the VM went away')) };
        default:
          throw new AgentRequestError('exec', 'command-not-found', `${program}: not found`);
      }
      return proc;
    },
    setTime(epochMs) {
      log.calls.push(`setTime ${epochMs}`);
    },
    async prepareSnapshot() {
      log.calls.push('prepareSnapshot');
    },
    reseed(entropy) {
      log.calls.push(`reseed ${entropy.length}`);
    },
    shares(spec) {
      log.calls.push(`shares ${spec.mounted}`);
    },
    identity(spec) {
      log.calls.push(`identity ${spec.hostname}`);
    },
    async setupRoot(spec) {
      log.calls.push(`setupRoot ${JSON.stringify(spec)}`);
    },
    async setup(spec) {
      log.calls.push(`setup ${JSON.stringify(spec)}`);
      if (spec.hostname === 'fail') throw new Error('mount: no such device');
    },
    async prepareShutdown() {
      log.calls.push('prepareShutdown');
    },
    powerOff() {
      log.calls.push('powerOff');
    },
  };
}

export function startFakeAgent(
  io: Duplex,
  options: ConstructorParameters<typeof AgentServer>[2] = {},
): { server: AgentServer; log: FakeAgentLog } {
  const log: FakeAgentLog = { signals: [], resizes: [], calls: [], flooded: 0 };
  const server = new AgentServer(io, fakeHandlers(log), { agent: { name: 'fake' }, ...options });
  server.announce();
  return { server, log };
}
