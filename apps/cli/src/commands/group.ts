// A command group (`smolvm machine ...`): a name and the subcommands that work. The CLI builds
// the yargs command from it, and uses the same table to point usage errors at the right --help.
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../context';

export interface CommandGroup {
  name: string;
  describe: string;
  // Subcommands add their own options: their argument types differ by design.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  subcommands: CommandModule<GlobalArgs, any>[];
}

export function groupCommand(group: CommandGroup): CommandModule<GlobalArgs, GlobalArgs> {
  return {
    command: group.name,
    describe: group.describe,
    builder: (yargs: Argv<GlobalArgs>) => {
      for (const sub of group.subcommands) yargs = yargs.command(sub);
      return yargs.demandCommand(1, `Name a ${group.name} command`);
    },
    handler: () => undefined,
  };
}

/** "smolvm machine ls" for argv ["machine", "ls", "--x"]: only words that name real commands. */
export function commandPath(groups: CommandGroup[], argv: string[]): string {
  const words = ['smolvm'];
  const group = groups.find((g) => g.name === argv[0]);
  if (group) {
    words.push(group.name);
    const sub = argv[1];
    if (sub && group.subcommands.some((c) => String(c.command).split(' ')[0] === sub)) words.push(sub);
  }
  return words.join(' ');
}
