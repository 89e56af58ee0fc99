// The UDP sockets the server and client use, behind a small interface so unit tests can inject
// an in-memory transport. The real one is node:dgram.
import { createSocket, type Socket } from 'node:dgram';

export interface RemoteInfo {
  address: string;
  port: number;
}

export interface DhcpSocket {
  /** Binds (SO_REUSEADDR, SO_BROADCAST); rejects with a one-line error. */
  bind(port: number, address: string): Promise<void>;
  send(buf: Buffer, port: number, address: string): Promise<void>;
  onMessage(listener: (msg: Buffer, from: RemoteInfo) => void): void;
  close(): Promise<void>;
}

export type DhcpSocketFactory = () => DhcpSocket;

class UdpSocket implements DhcpSocket {
  private readonly sock: Socket = createSocket({ type: 'udp4', reuseAddr: true });
  private closed = false;

  constructor() {
    // Errors after bind (e.g. ICMP-triggered ECONNREFUSED on some kernels) must not crash the process.
    this.sock.on('error', () => undefined);
  }

  bind(port: number, address: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new Error(`cannot bind UDP ${address}:${port}: ${err.message}`));
      this.sock.once('error', onError);
      this.sock.bind({ port, address, exclusive: true }, () => {
        this.sock.off('error', onError);
        this.sock.setBroadcast(true);
        resolve();
      });
    });
  }

  send(buf: Buffer, port: number, address: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.sock.send(buf, port, address, (err) => (err ? reject(err) : resolve()));
    });
  }

  onMessage(listener: (msg: Buffer, from: RemoteInfo) => void): void {
    this.sock.on('message', (msg, rinfo) => listener(msg, { address: rinfo.address, port: rinfo.port }));
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.sock.close(() => resolve()));
  }
}

/** node:dgram UDP/IPv4 sockets with SO_REUSEADDR. */
export const udpSocketFactory: DhcpSocketFactory = () => new UdpSocket();
