// `smolvm serve start|openapi`: thin adapters over @smolvm/api. Built as dist/smolvm-serve.js.
import { exitCodeOf, formatError, writeFileAtomic } from '@smolvm/common';
import { DEFAULT_LISTEN, openApiDocument, parseListen, readTokenFile, startServe } from '@smolvm/api';
import { cliMachines } from '../machine/machines';
import { builtBaseOptions, prepareBaseImage } from '../machine/base-image';
import type { ServeOpenapiArgs, ServeStartArgs } from './index';

function fail(err: unknown, debug: boolean): number {
  process.stderr.write(formatError(err) + '\n');
  if (debug && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  return exitCodeOf(err);
}

export async function runServeStart(args: ServeStartArgs): Promise<number> {
  try {
    const token = args.tokenFile !== undefined ? readTokenFile(args.tokenFile) : undefined;
    // --socket alone serves only the socket; otherwise TCP on --listen or the default.
    const listen =
      args.socket !== undefined && args.listen === undefined ? undefined : parseListen(args.listen ?? DEFAULT_LISTEN);
    const server = await startServe({
      machines: cliMachines(),
      // Bare machines are based on the same base as the CLI's (no progress bar: a server's stdout is its log).
      base: () => prepareBaseImage(true),
      builtBase: builtBaseOptions(),
      ...(listen ? { listen } : {}),
      ...(args.socket !== undefined ? { socket: args.socket } : {}),
      ...(token !== undefined ? { token } : {}),
      onInternalError: (err) =>
        process.stderr.write(
          `smolvm serve: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
        ),
    });
    if (server.url) process.stdout.write(`listening on ${server.url}\n`);
    if (server.socket) process.stdout.write(`listening on unix:${server.socket}\n`);
    if (!args.quiet)
      process.stderr.write(
        `smolvm serve: ${token !== undefined ? 'bearer token required' : 'loopback only, no token'}; Ctrl-C stops (machines keep running)\n`,
      );
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    if (!args.quiet)
      process.stderr.write(`smolvm serve: ${signal}: finishing requests in flight (again to exit at once)\n`);
    // A second signal leaves at once: the open requests' guest processes go with their connections.
    const again = () => process.exit(130);
    process.once('SIGINT', again);
    process.once('SIGTERM', again);
    await server.close();
    return 0;
  } catch (err) {
    return fail(err, args.debug);
  }
}

export async function runServeOpenapi(args: ServeOpenapiArgs): Promise<number> {
  try {
    const text = JSON.stringify(await openApiDocument(), null, 2) + '\n';
    if (args.output !== undefined) writeFileAtomic(args.output, text, 0o644);
    else process.stdout.write(text);
    return 0;
  } catch (err) {
    return fail(err, args.debug);
  }
}
