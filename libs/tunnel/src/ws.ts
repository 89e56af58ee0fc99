import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, type WebSocket } from 'ws';
import { SUBPROTOCOL, TUNNEL_PATH } from './protocol';

/**
 * The WebSocket as one byte stream for SSH. ws's own stream only ends (never closes) when the peer
 * vanishes without a close handshake, which would leave the SSH connection — and the agent's
 * session — hanging forever; here a closed WebSocket always destroys the stream.
 */
export function webSocketDuplex(ws: WebSocket): Duplex {
  ws.binaryType = 'nodebuffer';
  const stream = createWebSocketStream(ws, { highWaterMark: 1024 * 1024 });
  stream.on('error', () => stream.destroy());
  ws.once('close', () => stream.destroy());
  return stream;
}

/**
 * Changes the largest message `ws` accepts from its peer from now on (the server's `maxPayload` is
 * fixed per WebSocketServer; the proxy starts small and raises it once the agent has said hello).
 * ws has no public setter: this sets its receiver's limit, and throws if that field is gone (a ws
 * upgrade the tests would catch).
 */
export function setMaxMessageSize(ws: WebSocket, bytes: number): void {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number')
    throw new Error('setMaxMessageSize: this version of ws has no receiver limit to change');
  receiver._maxPayload = bytes;
}

/*
 * Raw bytes of an agent's first steps, for tests and benches that play strangers on the agent port
 * (idle, half an ident, unfinished frames…), where a WebSocket client library would not misbehave.
 */

/** The upgrade request an agent sends (a random key). */
export function upgradeRequest(path: string = TUNNEL_PATH): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
    `Sec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`
  );
}

/** The header of a client's binary frame (masked with a zero key) that announces `length` bytes. */
export function clientFrameHeader(length: number): Buffer {
  if (length < 126) return Buffer.from([0x82, 0x80 | length, 0, 0, 0, 0]);
  if (length < 65536) {
    const b = Buffer.from([0x82, 0x80 | 126, 0, 0, 0, 0, 0, 0]);
    b.writeUInt16BE(length, 2);
    return b;
  }
  const b = Buffer.alloc(14);
  b[0] = 0x82;
  b[1] = 0x80 | 127;
  b.writeBigUInt64BE(BigInt(length), 2);
  return b;
}

/** A whole client frame carrying `data` (with the zero mask key, the payload goes as it is). */
export function clientFrame(data: Buffer): Buffer {
  return Buffer.concat([clientFrameHeader(data.length), data]);
}

/** Sends `upgradeRequest(path)` on `socket`, then calls `then` with the response head once it is in. */
export function afterUpgrade(socket: Duplex, then: (head: string) => void, path?: string): void {
  socket.write(upgradeRequest(path));
  let head = '';
  const onData = (d: Buffer) => {
    head += d.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    socket.off('data', onData);
    then(head.slice(0, end));
  };
  socket.on('data', onData);
}
