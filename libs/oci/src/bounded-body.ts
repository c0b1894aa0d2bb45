// Registry answers read into memory (manifests, error documents, tokens) are read up to a bound
// of our own: Content-Length is the registry's word, and a chunked body has none.
import type { HttpResponse } from './transport';

/** The whole body, or undefined once it passes `maxBytes` (the connection is dropped then). */
export async function readBounded(body: HttpResponse['body'], maxBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > maxBytes) {
      body.destroy();
      return undefined;
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}
