// Lean UDP I/O for the DNS hot path. Node's public dgram API costs more CPU per datagram than
// the kernel does (EventEmitter dispatch, argument validation, an async-hooks scope and a lookup
// per send); at 100k queries/s that is what separates Node from dnsmasq. On a bound socket whose
// internals look as expected (Node 20: the `state symbol` handle with `onmessage` and
// `send(req, list, count, port, ip, hasCallback)`, and udp_wrap's SendWrap), this receives
// through the handle's `onmessage` and sends through `handle.send` directly. Anything unexpected
// and it uses the public API instead, which behaves the same, only slower.
import type { Socket as UdpSocket } from 'node:dgram';

export interface UdpEndpoint {
  /** True when the internal fast path is in use. */
  readonly fast: boolean;
  send(buf: Buffer, port: number, address: string): void;
}

export type UdpReceiver = (msg: Buffer, port: number, address: string) => void;

interface RawHandle {
  onmessage: unknown;
  send: (
    req: object,
    list: Buffer[],
    count: number,
    port: number,
    ip: string,
    hasCallback: boolean,
  ) => number;
}

type SendWrapCtor = new () => { list?: Buffer[] };

let sendWrapCtor: SendWrapCtor | null | undefined;

function loadSendWrap(): SendWrapCtor | null {
  if (sendWrapCtor !== undefined) return sendWrapCtor;
  sendWrapCtor = null;
  try {
    const binding = (process as unknown as { binding?: (name: string) => unknown }).binding?.('udp_wrap') as
      { SendWrap?: unknown } | undefined;
    if (typeof binding?.SendWrap === 'function') sendWrapCtor = binding.SendWrap as SendWrapCtor;
  } catch {
    // not available: public API
  }
  return sendWrapCtor;
}

function rawHandle(socket: UdpSocket): RawHandle | null {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  if (sym === undefined) return null;
  const state = (socket as unknown as Record<symbol, unknown>)[sym] as { handle?: unknown } | undefined;
  const h = state?.handle as Partial<RawHandle> | null | undefined;
  if (!h || typeof h.onmessage !== 'function' || typeof h.send !== 'function') return null;
  return h as RawHandle;
}

/**
 * Starts delivering the datagrams of a bound socket to `onMessage` and returns how to send.
 * `onError` gets receive and send errors. `fast: false` forces the public API.
 */
export function attachUdp(
  socket: UdpSocket,
  onMessage: UdpReceiver,
  onError: (err: Error) => void,
  fast = true,
): UdpEndpoint {
  const SendWrap = fast ? loadSendWrap() : null;
  const handle = fast ? rawHandle(socket) : null;
  if (SendWrap === null || handle === null) {
    socket.on('message', (msg, rinfo) => onMessage(msg, rinfo.port, rinfo.address));
    return { fast: false, send: (buf, port, address) => socket.send(buf, port, address) };
  }
  handle.onmessage = (nread: number, _h: unknown, buf: Buffer, rinfo: { port: number; address: string }) => {
    if (nread < 0) {
      onError(new Error(`recvmsg failed (${nread})`));
      return;
    }
    onMessage(buf, rinfo.port, rinfo.address);
  };
  // A SendWrap (and the list holding the buffer) is only kept by the native side while a send is
  // queued (the kernel's buffer was full); a synchronous send, the normal case, leaves both free
  // for the next datagram.
  let req = new SendWrap();
  let list: Buffer[] = [Buffer.alloc(0)];
  req.list = list;
  return {
    fast: true,
    send: (buf, port, address) => {
      list[0] = buf;
      const r = handle.send(req, list, 1, port, address, false);
      if (r === 0) {
        // queued: this request and list now belong to the pending send
        req = new SendWrap();
        list = [Buffer.alloc(0)];
        req.list = list;
      } else if (r < 0) {
        onError(new Error(`sendmsg to ${address}#${port} failed (${r})`));
      }
    },
  };
}
