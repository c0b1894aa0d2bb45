import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export type CpArgs = GlobalArgs & { src: string; dst: string };

export const cpCommand: CommandModule<GlobalArgs, CpArgs> = {
  command: 'cp <src> <dst>',
  describe: 'Copy a file between the host and a running machine (NAME:/path on one side)',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .positional('src', { type: 'string', demandOption: true, describe: 'Host path, or NAME:/guest/path' })
      .positional('dst', { type: 'string', demandOption: true, describe: 'Host path, or NAME:/guest/path' })
      .usage('smolvm machine cp SRC DST\n\nCopy one file to or from a running machine. The guest side is written atomically (a\npartial file never appears); files of 4 GiB or more are refused: mount a directory with\n--volume instead. A destination that is a directory receives the file under its own name.')
      .example('$0 machine cp ./script.py dev:/workspace/script.py', 'Upload')
      .example('$0 machine cp dev:/workspace/out.json ./', 'Download into the current directory'),
  handler: async (args) => (await import('./cp.handler')).runCp(args),
};
