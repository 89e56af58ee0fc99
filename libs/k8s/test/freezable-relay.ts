import { connect, createServer, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  /** Bytes held back while frozen, each way. */
  up: Buffer[];
  down: Buffer[];
}

/**
 * A loopback TCP relay to one target that can be frozen: it then stops forwarding in both
 * directions but closes nothing, and accepts new connections without connecting them onwards —
 * what a client sees of a stalled server or a black-holed path. Thawing delivers what was held.
 */
export class FreezableRelay {
  private frozen = false;
  private readonly pairs = new Set<Pair>();
  /** Bytes that arrived while frozen (both ways), delivered or not. */
  heldBytes = 0;

  private constructor(
    private readonly server: Server,
    private readonly target: { host: string; port: number },
    /** The port it listens on, on 127.0.0.1. */
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<FreezableRelay> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('relay: no TCP address');
    const relay = new FreezableRelay(server, target, address.port);
    server.on('connection', (c) => relay.accept(c));
    return relay;
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    for (const p of this.pairs) {
      if (!p.upstream) this.connectOnwards(p);
      for (const b of p.up.splice(0)) p.upstream!.write(b);
      for (const b of p.down.splice(0)) p.client.write(b);
    }
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    this.pairs.clear();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(client: Socket): void {
    const p: Pair = { client, upstream: undefined, up: [], down: [] };
    this.pairs.add(p);
    client.on('data', (b: Buffer) => {
      if (this.frozen || !p.upstream) {
        if (this.frozen) this.heldBytes += b.length;
        p.up.push(b);
      } else p.upstream.write(b);
    });
    client.on('error', () => undefined);
    client.on('close', () => {
      this.pairs.delete(p);
      p.upstream?.destroy();
    });
    if (!this.frozen) this.connectOnwards(p);
  }

  private connectOnwards(p: Pair): void {
    const upstream = connect(this.target);
    p.upstream = upstream;
    upstream.on('data', (b: Buffer) => {
      if (this.frozen) {
        this.heldBytes += b.length;
        p.down.push(b);
      } else p.client.write(b);
    });
    upstream.on('error', () => undefined);
    upstream.on('close', () => {
      this.pairs.delete(p);
      p.client.destroy();
    });
    for (const b of p.up.splice(0)) upstream.write(b);
  }
}
