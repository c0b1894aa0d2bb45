// Server-sent events on a hijacked response: `event:` + `data:` lines, flow-controlled (a slow
// client pauses the source instead of growing a buffer without bound).
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

export class SseStream {
  private ended = false;

  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    res.on('close', () => (this.ended = true));
  }

  get closed(): boolean {
    return this.ended || this.res.destroyed;
  }

  /**
   * Sends one event; `data` may hold newlines (each line becomes a `data:` line; CR and CRLF arrive as LF). False: wait
   * for drain.
   */
  send(event: string, data: string): boolean {
    if (this.closed) return true;
    const lines = data
      .split(/\r\n|\r|\n/)
      .map((l) => `data: ${l}\n`)
      .join('');
    return this.res.write(`event: ${event}\n${lines}\n`);
  }

  sendJson(event: string, value: unknown): boolean {
    return this.send(event, JSON.stringify(value));
  }

  /** Relays a byte stream as `event` events of UTF-8 text (split characters are kept whole). */
  pipeText(source: Readable, event: string): Promise<void> {
    const decoder = new StringDecoder('utf8');
    return new Promise((resolve) => {
      const finish = () => {
        const rest = decoder.end();
        if (rest) this.send(event, rest);
        resolve();
      };
      source.on('data', (chunk: Buffer) => {
        const text = decoder.write(chunk);
        if (text && !this.send(event, text)) {
          source.pause();
          this.res.once('drain', () => source.resume());
        }
      });
      source.once('end', finish);
      source.once('close', finish);
      source.once('error', finish);
    });
  }

  end(): void {
    if (!this.res.writableEnded) this.res.end();
    this.ended = true;
  }
}
