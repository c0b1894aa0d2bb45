// How this CLI runs itself again (the detached supervisor): `node dist/smolvm.js ...` from a
// checkout, the executable alone when smolvm is one file (there argv[1] is the executable too).
import path from 'node:path';
import { isSingleExecutable } from '@smolvm/sea';

export function selfCommand(): string[] {
  return isSingleExecutable() ? [process.execPath] : [process.execPath, path.resolve(process.argv[1])];
}
