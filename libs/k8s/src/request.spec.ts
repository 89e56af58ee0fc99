import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { decodeApiError } from './errors';
import { kubeRequest } from './request';

// An API server stand-in on loopback that answers as it is told, or never.
let server: Server;
let kc: KubeConfig;
let handle: (req: IncomingMessage, res: ServerResponse) => void;
let requests = 0;
const held: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
});
beforeEach(() => {
  requests = 0;
});
afterEach(() => {
  for (const r of held.splice(0)) r.destroy();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Settles with the request's outcome, or 'still pending' once the server has had the request for a while. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  return Promise.race([
    p.then(
      (v) => ({ resolved: v }),
      (e: unknown) => ({ rejected: decodeApiError(e) }),
    ),
    new Promise((resolve) => setTimeout(() => resolve('still pending'), 5000).unref()),
  ]);
}

describe('kubeRequest signal', () => {
  it('aborts a request the server never answers (the idle timeout alone would wait 30 s)', async () => {
    handle = (_req, res) => held.push(res);
    const ac = new AbortController();
    const p = kubeRequest(kc, { method: 'GET', path: '/hang', signal: ac.signal, timeoutMs: 60_000 });
    while (held.length === 0) await new Promise((r) => setTimeout(r, 10));
    ac.abort(new Error('renew deadline'));
    const got = await outcome(p);
    expect(got).toEqual({
      rejected: expect.objectContaining({ code: 0, reason: 'ABORT_ERR' }) as unknown,
    });
    expect((got as { rejected: { message: string } }).rejected.message).toContain('renew deadline');
  });

  it('aborts while the body trickles in (headers sent, the rest held back)', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"kind":');
      held.push(res);
    };
    const ac = new AbortController();
    const p = kubeRequest(kc, { method: 'GET', path: '/half', signal: ac.signal, timeoutMs: 60_000 });
    while (held.length === 0) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50)); // the client has the headers
    ac.abort();
    expect(await outcome(p)).toEqual({
      rejected: expect.objectContaining({ reason: 'ABORT_ERR' }) as unknown,
    });
  });

  it('does not connect at all when the signal is already aborted', async () => {
    handle = (_req, res) => res.end('{}');
    await expect(
      kubeRequest(kc, { method: 'GET', path: '/x', signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ decoded: { reason: 'ABORT_ERR' } });
    expect(requests).toBe(0);
  });

  it('a signal that never fires changes nothing', async () => {
    handle = (_req, res) => res.end('{"ok":true}');
    const ac = new AbortController();
    await expect(kubeRequest(kc, { method: 'GET', path: '/ok', signal: ac.signal })).resolves.toEqual({
      ok: true,
    });
    ac.abort(); // after the answer: harmless
    expect(requests).toBe(1);
  });
});
