import type { Duplex } from 'node:stream';

/**
 * Joins two streams both ways until either side ends or fails, then tears both down once.
 * `onBytes` sees the byte counts per direction (for metrics). Resolves when both are closed; a
 * stream that is already destroyed when given tears the other down at once.
 *
 * After the tear-down both are read to their end (the bytes are dropped): an ssh2 channel's
 * `destroy()` only sends CHANNEL_CLOSE, and its `close` (which the channel counts wait for) follows
 * its `end`, which a paused stream — unpiped once the other side went away — never emits.
 */
export function splice(
  a: Duplex,
  b: Duplex,
  onBytes?: (direction: 'a-to-b' | 'b-to-a', bytes: number) => void,
): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      a.unpipe(b);
      b.unpipe(a);
      a.destroy();
      b.destroy();
      a.resume();
      b.resume();
      resolve();
    };
    for (const s of [a, b]) s.on('error', finish);
    if (a.destroyed || b.destroyed) return finish();
    if (onBytes) {
      a.on('data', (c: Buffer) => !done && onBytes('a-to-b', c.length));
      b.on('data', (c: Buffer) => !done && onBytes('b-to-a', c.length));
    }
    a.pipe(b);
    b.pipe(a);
    for (const [s, other] of [
      [a, b],
      [b, a],
    ] as const) {
      s.once('close', () => {
        // After a clean EOF, pipe() has called other.end(): let `other` flush what it still
        // buffers (an SSH channel waiting for window) before tearing it down, or the tail is lost.
        if (s.readableEnded && !other.writableFinished && !other.destroyed) {
          other.once('finish', finish);
          other.once('close', finish);
        } else finish();
      });
    }
  });
}
