import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export const registriesCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'registries',
  describe: 'Registry credentials, mirrors and insecure registries',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .command<GlobalArgs>({
        command: 'edit',
        describe: 'Open registries.toml in $VISUAL/$EDITOR (created with mode 0600), then validate it',
        builder: (y) =>
          y
            .example('$0 config registries edit', 'Add credentials for a private registry')
            .example('EDITOR=nano $0 config registries edit', 'Use another editor'),
        handler: async (args) => (await import('./registries.handler')).runRegistriesEdit(args),
      })
      .demandCommand(1, 'Name a registries command'),
  handler: () => undefined,
};
