// Output of a process that exited while the agent was busy must still reach the host: the
// linger period (for pipes held open by background children) counts from the exit, not from
// when forwarding began.
import { PassThrough, Writable } from 'node:stream';
import type { OutboundStream } from '@smolvm/agent-protocol';
import { forwardOutput } from '../src/forward';

function sink(): { dest: OutboundStream; text: () => string } {
  const chunks: Buffer[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  Object.assign(dest, { peerClosed: false });
  return { dest: dest as unknown as OutboundStream, text: () => Buffer.concat(chunks).toString() };
}

it('forwards output read after an exit seen late, when forwarding began long before', async () => {
  const src = new PassThrough();
  const { dest, text } = sink();
  const fwd = forwardOutput(src, dest, 50);
  // The agent was busy: the exit is handled well after forwarding began, the output not read yet.
  await new Promise((r) => setTimeout(r, 150));
  fwd.processExited();
  await new Promise((r) => setTimeout(r, 20));
  src.end('written just before exit\n');
  await fwd.done;
  expect(text()).toBe('written just before exit\n');
});

it('still ends a pipe that stays quiet after the exit (a background child holds it open)', async () => {
  const src = new PassThrough();
  const { dest } = sink();
  const fwd = forwardOutput(src, dest, 50);
  fwd.processExited();
  await fwd.done;
  expect(src.destroyed).toBe(true);
});
