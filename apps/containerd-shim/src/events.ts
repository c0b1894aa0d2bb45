// Task events to containerd: containerd.services.events.ttrpc.v1.Events/Forward on the ttrpc
// socket containerd named in TTRPC_ADDRESS, one envelope per event, in the order they happened.
import { anyOf, timestamp } from './proto';
import { TtrpcClient } from './ttrpc';

export interface Publisher {
  /** Queues the event; resolves once containerd took it (or gave up on it, logged). */
  publish(topic: string, type: string, event: Record<string, unknown>): Promise<void>;
  close(): void;
}

const SERVICE = 'containerd.services.events.ttrpc.v1.Events';
const NAMESPACE_HEADER = 'containerd-namespace-ttrpc';

export class EventPublisher implements Publisher {
  private client: Promise<TtrpcClient> | undefined;
  private last: Promise<void> = Promise.resolve();

  constructor(
    private readonly address: string,
    private readonly namespace: string,
    private readonly log: (line: string) => void,
  ) {}

  publish(topic: string, type: string, event: Record<string, unknown>): Promise<void> {
    const envelope = { timestamp: timestamp(Date.now()), namespace: this.namespace, topic, event: anyOf(type, event) };
    this.last = this.last.then(() => this.forward(envelope, topic));
    return this.last;
  }

  private async forward(envelope: Record<string, unknown>, topic: string): Promise<void> {
    // One reconnect: containerd may have restarted since the last event.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        this.client ??= TtrpcClient.connect(this.address.replace(/^unix:\/\//, ''));
        const client = await this.client;
        await client.call(SERVICE, 'Forward', { envelope }, { [NAMESPACE_HEADER]: this.namespace });
        return;
      } catch (err) {
        void this.client?.then(
          (c) => c.close(),
          () => undefined,
        );
        this.client = undefined;
        if (attempt === 1) this.log(`event ${topic} not delivered: ${(err as Error).message}`);
      }
    }
  }

  close(): void {
    void this.client?.then(
      (c) => c.close(),
      () => undefined,
    );
  }
}
