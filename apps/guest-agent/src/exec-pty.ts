// exec on a pseudo-terminal. Node cannot make a child a session leader with a controlling
// terminal (setsid + TIOCSCTTY between fork and exec), so the child is busybox `setsid -c`,
// which does exactly that and then execs the command with the pty slave as stdin/out/err.
// Then ^C typed on the master reaches the foreground process group, and TIOCSWINSZ on the
// master sends it SIGWINCH.
import type { ChildProcess } from 'node:child_process';
import type { ExecIo, ExecProcess, ExecRequest, ExitStatus } from '@smolvm/agent-protocol';
import { childProcess, tty } from './builtins';
import { identity, signalNumber, spawnFailed, type PreparedCommand } from './command';
import { started } from './exec-pipes';
import { forwardOutput } from './forward';
import { FD_CLOEXEC, F_SETFD, TIOCSWINSZ } from './constants';
import { check, libc, type Winsize } from './libc';

function winsize(rows: number, cols: number): Winsize {
  return { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
}

export async function execWithPty(
  req: ExecRequest,
  cmd: PreparedCommand,
  io: ExecIo,
  busybox: string,
  lingerMs?: number,
): Promise<ExecProcess> {
  const c = libc();
  const size = req.tty ?? { rows: 24, cols: 80 };
  const master = [0];
  const slave = [0];
  check(c.openpty(master, slave, null, null, winsize(size.rows, size.cols)), 'openpty');
  const [m, s] = [master[0], slave[0]];
  // openpty's fds are inheritable: a concurrent exec would keep this slave open and the
  // session would never see its end. The child gets the slave via dup2, which clears the flag.
  c.fcntl(m, F_SETFD, FD_CLOEXEC);
  c.fcntl(s, F_SETFD, FD_CLOEXEC);
  // Programs that reopen their terminal by name (ssh, sudo, su) need to own it.
  c.fchown(s, cmd.creds.uid, cmd.creds.gid);
  let child: ChildProcess;
  try {
    child = childProcess().spawn(busybox, ['setsid', '-c', cmd.file, ...cmd.argv.slice(1)], {
      argv0: 'busybox',
      cwd: cmd.cwd,
      env: cmd.env,
      ...identity(cmd.creds),
      stdio: [s, s, s],
    });
    await started(child);
  } catch (err) {
    c.close(m);
    throw spawnFailed(err, cmd.argv[0]);
  } finally {
    c.close(s);
  }
  const terminal = new (tty().ReadStream)(m);
  terminal.on('error', () => undefined);
  const out = forwardOutput(terminal, io.stdout, lingerMs);
  io.stderr.end();
  if (io.stdin) io.stdin.pipe(terminal, { end: false });
  // The fd number is only ours while the master is open: after that it may name another file.
  let masterOpen = true;
  void out.done.then(() => {
    masterOpen = false;
    terminal.destroy();
  });
  const pid = child.pid as number;
  const running = () => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      out.processExited();
      io.stdin?.destroy();
      resolve({ code: signal ? null : (code ?? 0), signal: signal ?? null });
    });
  });
  return {
    pid,
    exited,
    signal(name) {
      const n = signalNumber(name);
      if (!running()) return;
      // Like a terminal's own ^C: to the foreground process group, which may be a job the shell started.
      const group = masterOpen ? c.tcgetpgrp(m) : -1;
      try {
        process.kill(group > 0 ? -group : pid, n);
      } catch {
        // Already gone.
      }
    },
    resize(rows, cols) {
      if (masterOpen && running()) c.ioctlWinsize(m, TIOCSWINSZ, winsize(rows, cols));
    },
  };
}
