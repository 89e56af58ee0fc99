import { request } from 'node:http';
import { connect, type Socket } from 'node:net';

/**
 * Connects to the HTTP server at `url` (its host and port), lets `write` send anything at all —
 * half a head, a slow one, a truncated body — optionally half-closes, and resolves with every byte
 * the server answered once it closed (a reset counts as closed). For tests of a server's limits.
 */
export function rawExchange(
  url: string,
  write: (s: Socket) => void,
  opts: { end?: boolean } = {},
): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname, () => {
      write(s);
      if (opts.end) s.end();
    });
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (got += d));
    s.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'ECONNRESET' || e.code === 'EPIPE' ? resolve(got) : reject(e),
    );
    s.on('close', () => resolve(got));
  });
}

/**
 * POSTs more than `limitBytes` to `url` in 64 KiB chunks without announcing a length (chunked),
 * as long as the server reads; resolves with the status it answered (413 from a server that caps
 * bodies while they stream in).
 */
export function postStreamed(
  url: string,
  headers: Record<string, string>,
  limitBytes: number,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    const pump = () => {
      while (sent <= limitBytes + chunk.length && !req.destroyed) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}
