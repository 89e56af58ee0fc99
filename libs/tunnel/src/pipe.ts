import type { Duplex } from 'node:stream';

/**
 * Joins two streams both ways until either side ends or fails, then tears both down once.
 * `onBytes` sees the byte counts per direction (for metrics). Resolves when both are closed.
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
      a.destroy();
      b.destroy();
      resolve();
    };
    if (onBytes) {
      a.on('data', (c: Buffer) => onBytes('a-to-b', c.length));
      b.on('data', (c: Buffer) => onBytes('b-to-a', c.length));
    }
    a.pipe(b);
    b.pipe(a);
    for (const [s, other] of [
      [a, b],
      [b, a],
    ] as const) {
      s.once('error', finish);
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
