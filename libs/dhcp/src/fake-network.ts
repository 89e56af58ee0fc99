// An in-memory UDP "link" for unit tests: DhcpServer and DhcpClient (or scripted peers) talk over
// it through the DhcpSocketFactory option, with no kernel involved.
import { ANY_ADDRESS as ANY, LIMITED_BROADCAST as BROADCAST } from './ipv4';
import type { DhcpSocket, DhcpSocketFactory, RemoteInfo } from './transport';

export interface FakeDatagram {
  from: RemoteInfo;
  to: RemoteInfo;
  buf: Buffer;
}

/** A host on the fake link: its addresses decide which unicasts its wildcard sockets receive. */
export class FakeHost {
  readonly addresses = new Set<string>();
  /** The source of datagrams from wildcard sockets; default the first address (see primaryAddress). */
  source: string | undefined;
  constructor(
    readonly net: FakeDhcpNetwork,
    readonly name: string,
  ) {}

  /** A socket factory for this host (pass as `socketFactory`). */
  get socketFactory(): DhcpSocketFactory {
    return () => new FakeSocket(this);
  }

  /** The source address of a datagram sent from a socket bound to 0.0.0.0 (like the kernel's choice). */
  get primaryAddress(): string {
    return this.source ?? [...this.addresses][0] ?? ANY;
  }
}

export class FakeSocket implements DhcpSocket {
  bound: RemoteInfo | undefined;
  closed = false;
  private readonly listeners: ((msg: Buffer, from: RemoteInfo) => void)[] = [];

  constructor(readonly host: FakeHost) {}

  async bind(port: number, address: string): Promise<void> {
    if (this.closed) throw new Error('socket closed');
    if (address !== ANY && !this.host.addresses.has(address)) {
      throw new Error(`cannot bind UDP ${address}:${port}: bind EADDRNOTAVAIL ${address}`);
    }
    this.bound = { address, port };
    this.host.net.sockets.add(this);
  }

  async send(buf: Buffer, port: number, address: string): Promise<void> {
    if (this.closed) throw new Error('socket closed');
    const from = {
      address: this.bound && this.bound.address !== ANY ? this.bound.address : this.host.primaryAddress,
      port: this.bound?.port ?? 0,
    };
    this.host.net.transmit({ from, to: { address, port }, buf: Buffer.from(buf) }, this);
  }

  onMessage(listener: (msg: Buffer, from: RemoteInfo) => void): void {
    this.listeners.push(listener);
  }

  /** @internal */
  deliver(d: FakeDatagram): void {
    if (this.closed) return;
    for (const l of this.listeners) l(Buffer.from(d.buf), { ...d.from });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.host.net.sockets.delete(this);
  }
}

/**
 * One broadcast domain. Delivery follows Linux: a limited broadcast reaches every other socket bound
 * to 0.0.0.0 on the port; a unicast reaches the socket bound to exactly that address and port, else
 * wildcard sockets on the host that owns the address. Delivery is asynchronous (setImmediate).
 */
export class FakeDhcpNetwork {
  /** @internal */
  readonly sockets = new Set<FakeSocket>();
  /** Every datagram sent, in order. */
  readonly log: FakeDatagram[] = [];
  /** Return true to lose a datagram (after it was logged). */
  drop: (d: FakeDatagram) => boolean = () => false;

  host(name: string, ...addresses: string[]): FakeHost {
    const h = new FakeHost(this, name);
    for (const a of addresses) h.addresses.add(a);
    return h;
  }

  /** @internal */
  transmit(d: FakeDatagram, sender: FakeSocket): void {
    this.log.push(d);
    if (this.drop(d)) return;
    const onPort = [...this.sockets].filter((s) => s !== sender && s.bound?.port === d.to.port);
    let targets: FakeSocket[];
    if (d.to.address === BROADCAST) {
      targets = onPort.filter((s) => s.bound?.address === ANY);
    } else {
      const exact = onPort.filter((s) => s.bound?.address === d.to.address);
      targets = exact.length
        ? exact
        : onPort.filter((s) => s.bound?.address === ANY && s.host.addresses.has(d.to.address));
    }
    setImmediate(() => {
      for (const t of targets) t.deliver(d);
    });
  }
}
