import { createServer, type Server, type Socket } from 'node:net';
import { ReopeningPool, until } from './index';

describe('ReopeningPool', () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];
  const sources: string[] = [];
  const received: string[] = [];

  beforeAll(async () => {
    server = createServer((s) => {
      accepted.push(s);
      sources.push(s.remoteAddress ?? '');
      s.on('data', (d: Buffer) => received.push(d.toString()));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('keeps its size open: each connection the server closes is recorded and opened again', async () => {
    const pool = new ReopeningPool({
      port,
      size: 4,
      kinds: ['quiet', 'talks'] as const,
      sourceOf: (i) => `127.0.0.${2 + (i % 2)}`,
      behave: (s, kind) => {
        if (kind === 'talks') s.write('hello');
      },
    });
    try {
      await until('4 connections accepted', () => accepted.length === 4 && pool.open === 4);
      expect(new Set(sources)).toEqual(new Set(['127.0.0.2', '127.0.0.3']));
      await until('the two talkers to be heard', () => received.length === 2);
      for (const s of accepted.slice(0, 3)) s.destroy();
      await until(
        '3 closes recorded and 3 new connections',
        () => pool.closed.length === 3 && accepted.length === 7,
      );
      expect(pool.closed.map((c) => c.kind)).toEqual(['quiet', 'talks', 'quiet']);
      expect(pool.closed.every((c) => c.afterMs >= 0)).toBe(true);
      await until('4 open again', () => pool.open === 4);
    } finally {
      pool.stop();
    }
    await until('all closed by stop()', () => pool.open === 0);
    const before = accepted.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(accepted.length).toBe(before); // nothing re-opened after stop()
    expect(pool.closed).toHaveLength(3); // closes after stop() are not the server's doing
  });
});
