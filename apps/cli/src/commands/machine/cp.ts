import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export type CpArgs = GlobalArgs & { src: string; dst: string };

export const cpCommand: CommandModule<GlobalArgs, CpArgs> = {
  command: 'cp <src> <dst>',
  describe: 'Copy a file or directory between the host and a running machine (NAME:/path on one side)',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .positional('src', { type: 'string', demandOption: true, describe: 'Host path, or NAME:/guest/path' })
      .positional('dst', { type: 'string', demandOption: true, describe: 'Host path, or NAME:/guest/path' })
      .usage(
        'smolvm machine cp SRC DST\n\nCopy a file or a directory to or from a running machine. The destination is written\natomically (a partial file or tree never appears); 4 GiB or more is refused: mount a directory\nwith --volume instead. A destination that is a directory receives the source under its own\nname; a directory is never merged into an existing one.',
      )
      .example('$0 machine cp ./script.py dev:/workspace/script.py', 'Upload')
      .example('$0 machine cp dev:/workspace/out.json ./', 'Download into the current directory')
      .example('$0 machine cp ./src dev:/workspace', 'Upload a directory as /workspace/src'),
  handler: async (args) => (await import('./cp.handler')).runCp(args),
};
