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
