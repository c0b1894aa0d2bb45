// A small image for the end-to-end tests: busybox userland with its own /etc, built with our
// erofs writer, so it is unmistakably not the agent image.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildErofsFromDirectory } from '@smolvm/erofs';
import { hostBusybox } from './harness';

export async function buildTestImage(tree: string, out: string): Promise<void> {
  for (const dir of ['bin', 'etc', 'home/app', 'root', 'tmp', 'proc', 'sys', 'dev'])
    fs.mkdirSync(path.join(tree, dir), { recursive: true });
  const busybox = hostBusybox();
  fs.copyFileSync(busybox, path.join(tree, 'bin/busybox'));
  fs.chmodSync(path.join(tree, 'bin/busybox'), 0o755);
  for (const applet of execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
    if (applet !== 'busybox') fs.symlinkSync('busybox', path.join(tree, 'bin', applet));
  }
  fs.writeFileSync(path.join(tree, 'etc/os-release'), 'ID=smolvm-test\n');
  fs.writeFileSync(path.join(tree, 'etc/motd'), 'original\n');
  fs.writeFileSync(
    path.join(tree, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n',
  );
  fs.writeFileSync(path.join(tree, 'etc/group'), 'root:x:0:\napp:x:1000:\n');
  await buildErofsFromDirectory(tree, out, { owner: { uid: 0, gid: 0 } });
}
