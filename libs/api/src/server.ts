// The API server: fastify with TypeBox schemas, the OpenAPI 3.1 document generated from the same
// route definitions, one error shape, bearer-token auth and, without a token, a Host check
// (a web page must not reach a loopback API through DNS rebinding). No CORS: browsers get none.
import crypto from 'node:crypto';
import Fastify from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Readable } from 'node:stream';
import { toHttpError } from './errors';
import { registerRoutes, type Api, type ApiContext } from './routes';
import { errors } from './schemas';

export interface ApiServerOptions {
  /** Every request must carry `Authorization: Bearer <token>` (compared in constant time). */
  token?: string;
  /**
   * Without a token: the Host header must name a loopback address or localhost, so a web page
   * on another origin cannot talk to the API through DNS rebinding.
   */
  loopbackHostOnly?: boolean;
  /** Where request errors of the 500 kind are logged (their text never reaches the client). */
  onInternalError?: (err: unknown) => void;
}

/** JSON request bodies (machines, exec); file uploads stream and are bounded by the 4 GiB cap instead. */
export const JSON_BODY_LIMIT = 256 * 1024;

const VERSION = '0.1.0';

function sameSecret(given: string, expected: string): boolean {
  // Digests first: timingSafeEqual needs equal lengths, and the length must not leak either.
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

export async function createApiServer(ctx: ApiContext, options: ApiServerOptions = {}): Promise<Api> {
  const app = Fastify({
    bodyLimit: JSON_BODY_LIMIT,
    logger: false,
    return503OnClosing: true,
    // Unknown fields are refused, not silently dropped (fastify's default removes them).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'smolvm',
        version: VERSION,
        description:
          'Drive smolvm machines over HTTP: `smolvm serve start`. Errors are {"error": message, "code": stable-code}.',
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'Required when the server was started with --token-file',
          },
        },
      },
      security: [{ bearerAuth: [] }, {}],
    },
  });

  // Uploads are streamed into the machine as they arrive, never buffered.
  app.addContentTypeParser(['application/octet-stream', 'application/x-tar'], (_request, payload, done) =>
    done(null, payload as Readable),
  );

  app.addHook('onRequest', async (request) => {
    if (options.token !== undefined) {
      const header = request.headers.authorization ?? '';
      const match = /^Bearer (.+)$/.exec(header);
      if (!match || !sameSecret(match[1], options.token))
        throw Object.assign(new Error('unauthorized'), { statusCode: 401, code: 'SMOLVM_UNAUTHORIZED' });
    } else if (options.loopbackHostOnly && !LOOPBACK_HOST.test(request.headers.host ?? '')) {
      throw Object.assign(new Error('forbidden host'), { statusCode: 403, code: 'SMOLVM_FORBIDDEN_HOST' });
    }
  });

  app.setErrorHandler((err, _request, reply) => {
    const code = (err as { code?: string }).code;
    if (code === 'SMOLVM_UNAUTHORIZED') {
      return reply.code(401).header('www-authenticate', 'Bearer').send({
        error: "missing or wrong bearer token; send Authorization: Bearer <the token in the server's --token-file>",
        code: 'unauthorized',
      });
    }
    if (code === 'SMOLVM_FORBIDDEN_HOST') {
      return reply.code(403).send({
        error:
          'this server answers only requests addressed to localhost or a loopback address; start it with --token-file to serve other names',
        code: 'forbidden-host',
      });
    }
    const mapped = toHttpError(err);
    if (mapped.status >= 500 && mapped.body.code === 'internal') options.onInternalError?.(err);
    return reply.code(mapped.status).send(mapped.body);
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: `no route ${request.method} ${request.url.split('?')[0]}; see GET /api/v1/openapi.json`,
      code: 'no-such-route',
    }),
  );

  // Every route can be refused before it runs (auth, Host) or fail unexpectedly: declared once here.
  app.addHook('onRoute', (route) => {
    const schema = (route.schema ??= {}) as { response?: Record<string, unknown> };
    schema.response = { ...errors(401, 403, 500), ...schema.response };
  });

  registerRoutes(app, ctx);

  app.get(
    '/api/v1/openapi.json',
    {
      schema: {
        tags: ['meta'],
        summary: 'This OpenAPI 3.1 document',
        response: { 200: { type: 'object', additionalProperties: true } },
      },
    },
    async () => app.swagger(),
  );

  await app.ready();
  return app;
}

/** The OpenAPI document of the routes, without serving anything (`smolvm serve openapi`). */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  // Routes use the context only when they answer a request, which this server never does.
  const unused = (): never => {
    throw new Error('the OpenAPI document server serves no requests');
  };
  const ctx = {
    get machines(): never {
      return unused();
    },
    pull: unused,
    base: unused,
    shutdown: new AbortController().signal,
  } as ApiContext;
  const app = await createApiServer(ctx);
  try {
    return app.swagger() as unknown as Record<string, unknown>;
  } finally {
    await app.close();
  }
}
