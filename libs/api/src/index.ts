// Public API of @smolvm/api: the HTTP API of `smolvm serve` — its routes and their schemas (one
// source for request validation, responses and the OpenAPI 3.1 document) and the server.
export { startServe, pullImage, type ServeOptions, type RunningServer } from './serve';
export { createApiServer, openApiDocument, JSON_BODY_LIMIT, type ApiServerOptions } from './server';
export {
  parseListen,
  assertListenAllowed,
  readTokenFile,
  isLoopback,
  DEFAULT_LISTEN,
  type ListenAddress,
} from './listen';
export { toHttpError, HttpError } from './errors';
export { EXEC_OUTPUT_CAP, type ApiContext } from './routes';
