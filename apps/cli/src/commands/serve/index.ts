// `smolvm serve ...`: the HTTP API. Its code (fastify and the routes) is a bundle of its own,
// dist/smolvm-serve.js (in the single-file smolvm, its asset of that name), loaded only by these
// commands: every other command starts as before.
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';
import type { CommandGroup } from '../group';

export type ServeStartArgs = GlobalArgs & { listen?: string; socket?: string; tokenFile?: string };
export type ServeOpenapiArgs = GlobalArgs & { output?: string };

type ServeHandlers = typeof import('./serve.handler');

/** The serve bundle beside this one; from the sources (tests under ts-jest), the handler module itself. */
async function handlers(): Promise<ServeHandlers> {
  // Imported here: the command table (every command's start-up) must not load them.
  const { isSingleExecutable, readAsset } = await import('@smolvm/sea');
  if (isSingleExecutable()) {
    const { loadBundle } = await import('../../code-cache');
    // Evaluated like the CLI's own asset, without a code cache: a server starts once, and the
    // cache file is keyed by the executable, which the CLI's cache already uses.
    return loadBundle({
      bundle: process.execPath,
      source: () => readAsset('smolvm-serve.js').toString('latin1'),
      cacheDir: undefined,
      command: 'serve',
    }).exports as ServeHandlers;
  }
  // A computed path: esbuild must not pull the handler (and fastify) into smolvm-main.js.
  const file = path.join(
    __dirname,
    path.basename(__filename) === 'smolvm-main.js' ? 'smolvm-serve.js' : 'serve.handler',
  );
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as ServeHandlers;
}

/** The serve bundle has its own copies of the error classes: it prints its own errors and returns the exit code. */
async function run(fn: (h: ServeHandlers) => Promise<number>): Promise<void> {
  process.exitCode = await fn(await handlers());
}

const startCommand: CommandModule<GlobalArgs, ServeStartArgs> = {
  command: 'start',
  describe: 'Serve the HTTP API in the foreground (Ctrl-C stops it; machines keep running)',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('listen', {
        type: 'string',
        describe: 'TCP address ADDR:PORT (default 127.0.0.1:8080; not loopback: needs --token-file)',
      })
      .option('socket', {
        type: 'string',
        describe: 'Also (or only, without --listen) serve on this unix socket, created 0600',
      })
      .option('token-file', {
        type: 'string',
        describe: 'Require Authorization: Bearer <token> on every request; the file (mode 0600) holds the token',
      })
      .usage(
        'smolvm serve start [--listen ADDR:PORT] [--socket PATH] [--token-file FILE]\n\nServe the HTTP API (routes: GET /api/v1/openapi.json or `smolvm serve openapi`). Loopback\nonly unless a token is required; no CORS. Prints one "listening on" line per listener on stdout.',
      )
      .example('$0 serve start', 'Listen on 127.0.0.1:8080')
      .example(
        '$0 serve start --socket ~/.smolvm.sock --listen 127.0.0.1:0',
        'A unix socket (0600) and a free loopback port',
      )
      .example(
        '$0 serve start --listen 0.0.0.0:8080 --token-file ~/.smolvm-token',
        'All interfaces, bearer token required',
      ),
  handler: (args) => run((h) => h.runServeStart(args)),
};

const openapiCommand: CommandModule<GlobalArgs, ServeOpenapiArgs> = {
  command: 'openapi',
  describe: 'Print the OpenAPI 3.1 document of the HTTP API (what the server validates with)',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('output', { alias: 'o', type: 'string', describe: 'Write it to this file instead of stdout' })
      .example('$0 serve openapi -o smolvm-openapi.json', 'Save the document'),
  handler: (args) => run((h) => h.runServeOpenapi(args)),
};

export const serveGroup: CommandGroup = {
  name: 'serve',
  describe: 'The HTTP API (OpenAPI 3.1, SSE exec and logs, file transfer)',
  subcommands: [startCommand, openapiCommand],
};
