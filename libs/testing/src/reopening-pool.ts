import { connect as netConnect, type Socket } from 'node:net';

/** One connection of a `ReopeningPool` that the far end closed: which kind, and how long it lived. */
export interface PoolClose<K extends string> {
  kind: K;
  afterMs: number;
}

export interface ReopeningPoolOptions<K extends string> {
  /** Where to connect (loopback). */
  host?: string;
  port: number;
  /** Connections kept open. */
  size: number;
  /** Connection i is of kind `kinds[i % kinds.length]`. */
  kinds: readonly K[];
  /** The local address of connection i (e.g. one of 127.0.0.2…), for per-source limits. */
  sourceOf?: (i: number) => string;
  /** What a connection of `kind` does once connected (nothing: an idle TCP connection). */
  behave: (socket: Socket, kind: K) => void;
}

/**
 * Keeps `size` client connections open, as strangers that come back do: each one the far end closes
 * is recorded (`closed`) and replaced at once. For tests and benches of a server's limits on hostile
 * clients (idle, slow, truncated, oversized). `stop()` destroys what is open and opens no more.
 */
export class ReopeningPool<K extends string> {
  readonly closed: PoolClose<K>[] = [];
  private readonly sockets = new Set<Socket>();
  private running = true;
  private next = 0;

  constructor(private readonly o: ReopeningPoolOptions<K>) {
    if (o.kinds.length === 0) throw new Error('ReopeningPool: give at least one kind');
    for (let k = 0; k < o.size; k++) this.openOne();
  }

  /** Connections open right now. */
  get open(): number {
    return this.sockets.size;
  }

  stop(): void {
    this.running = false;
    for (const s of this.sockets) s.destroy();
  }

  private openOne(): void {
    const i = this.next++;
    const kind = this.o.kinds[i % this.o.kinds.length] as K;
    const localAddress = this.o.sourceOf?.(i);
    const s = netConnect({
      host: this.o.host ?? '127.0.0.1',
      port: this.o.port,
      ...(localAddress ? { localAddress } : {}),
    });
    const t0 = performance.now();
    this.sockets.add(s);
    s.on('error', () => undefined);
    s.on('connect', () => this.o.behave(s, kind));
    s.on('close', () => {
      this.sockets.delete(s);
      if (!this.running) return;
      this.closed.push({ kind, afterMs: performance.now() - t0 });
      this.openOne();
    });
  }
}
