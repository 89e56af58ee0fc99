import type { Duplex } from 'node:stream';
import { createWebSocketStream, type WebSocket } from 'ws';

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
