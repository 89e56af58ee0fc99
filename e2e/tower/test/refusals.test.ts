import { createServer, type Server as HttpServer } from 'node:http';
import { connect as netConnect } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Server as SshServer, type Connection } from 'ssh2';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { createCertificateAuthority, issueCertificate, renderKubeconfig } from '@knet/crypto';
import { freePort, until } from '@knet/testing';
import { SUBPROTOCOL, generateHostKey } from '@knet/tunnel';
import { condition, getCluster, towerBed, writeKubeconfig } from './harness';

const bed = towerBed({ testTimeout: 120_000 });

async function proxyMetric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${bed.proxy.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('refusals', () => {
  it("a wrong token: the agent logs the proxy's answer, backs off and retries; the cluster stays unavailable", async () => {
    await bed.readyCluster('wrong-token');
    const wrong = 'not-the-token-but-long-enough';
    const agent = bed.startAgent({ cluster: 'wrong-token', token: wrong, id: 'wt' });
    await until(
      () => `the agent to retry after the refusal; agent log:\n${agent.tail(20)}`,
      async () =>
        (readFileSync(agent.logFile, 'utf8').match(/refused this agent \(unauthorized\)/g)?.length ?? 0) >= 2,
      30_000,
    );
    const log = readFileSync(agent.logFile, 'utf8');
    expect(log).toContain("the cluster name or token is not accepted (the proxy's log has the reason)");
    expect(log).toMatch(/reconnecting after backoff/);
    expect(log).not.toContain(wrong); // the token is never logged
    expect(agent.running).toBe(true);
    expect(condition(await getCluster(bed.host, 'wrong-token'), 'AgentAvailable')).toBe('False');
    // The detail is the proxy's: in its log and its metrics.
    expect(readFileSync(bed.proxy.proc.logFile, 'utf8')).toContain(
      "the token does not match Cluster wrong-token's spec.connection.token",
    );
    expect(
      await proxyMetric('tower_proxy_handshake_failures_total', 'reason="bad-token"'),
    ).toBeGreaterThanOrEqual(2);
    await agent.stop();
  });

  it('an unknown cluster and a wrong token look the same to the agent (no Cluster names to enumerate)', async () => {
    await bed.readyCluster('known');
    const token = 'x'.repeat(64);
    const unknown = bed.startAgent({ cluster: 'no-such-cluster', token, id: 'unknown' });
    const known = bed.startAgent({ cluster: 'known', token, id: 'known' });
    const refusal = (a: typeof unknown) =>
      until(
        () => `a refusal in the agent's log:\n${a.tail(20)}`,
        async () =>
          /the proxy refused this agent \([^)]*\): [^"]*/.exec(readFileSync(a.logFile, 'utf8'))?.[0],
        30_000,
      );
    const [u, k] = await Promise.all([refusal(unknown), refusal(known)]);
    expect(u).toBe(k);
    expect(u).toBe(
      "the proxy refused this agent (unauthorized): the cluster name or token is not accepted (the proxy's log has the reason)",
    );
    expect(
      await proxyMetric('tower_proxy_handshake_failures_total', 'reason="unknown-cluster"'),
    ).toBeGreaterThanOrEqual(1);
    await unknown.stop();
    await known.stop();
  });

  it('a wrong fingerprint: the agent refuses the proxy and exits non-zero with one clear line', async () => {
    const c = await bed.readyCluster('wrong-fp');
    const other = generateHostKey().fingerprint;
    const agent = bed.startAgent({
      cluster: 'wrong-fp',
      token: c.spec!.connection!.token!,
      fingerprint: other,
      id: 'fp',
    });
    expect(await agent.wait()).toBe(1);
    const stderrLines = agent
      .tail(50)
      .split('\n')
      .filter((l) => l.startsWith('tower-agent: '));
    expect(stderrLines).toEqual([
      `tower-agent: the proxy's SSH host key is ${bed.proxy.fingerprint}, not the pinned --fingerprint ${other}: refusing to connect (another proxy, a rotated key, or a man in the middle; check the fingerprint the proxy logs)`,
    ]);
    // It never said hello (so never sent its token): the proxy logged no agent "fp", accepted or refused.
    expect(readFileSync(bed.proxy.proc.logFile, 'utf8')).not.toContain('"agent":"fp"');
  });

  describe('listeners', () => {
    let kubeconfigA: string;
    let kubeconfigB: string;

    beforeAll(async () => {
      const [a, b] = await Promise.all([bed.readyCluster('listener-a'), bed.readyCluster('listener-b')]);
      kubeconfigA = writeKubeconfig(a, bed.host.dir);
      kubeconfigB = writeKubeconfig(b, bed.host.dir);
      const agents = [a, b].map((c) =>
        bed.startAgent({ cluster: c.metadata.name, token: c.spec!.connection!.token!, id: c.metadata.name }),
      );
      for (const [i, c] of [a, b].entries()) await bed.untilAgentAvailable(c.metadata.name, agents[i]);
      expect(
        await bed.host.kubectlOk(['get', 'namespace', 'default', '-o', 'name'], { kubeconfig: kubeconfigA }),
      ).toBe('namespace/default');
    });

    it("cluster A's kubeconfig used against cluster B's listener is refused (403), naming the reason", async () => {
      const serverB = /server: "([^"]+)"/.exec(readFileSync(kubeconfigB, 'utf8'))![1]!;
      const crossed = join(bed.host.dir, 'a-at-b.kubeconfig');
      writeFileSync(
        crossed,
        readFileSync(kubeconfigA, 'utf8').replace(/server: "[^"]+"/, `server: "${serverB}"`),
      );
      const r = await bed.host.kubectl(['get', '--raw', '/api/v1/namespaces'], { kubeconfig: crossed });
      expect(r.exitCode).not.toBe(0);
      // --raw skips discovery, so kubectl prints the Status the listener sent
      expect(r.stderr).toBe(
        'Error from server (Forbidden): client certificate "knet-tower:listener-a" is not valid for cluster listener-b',
      );
      expect((await bed.host.kubectl(['get', 'namespaces'], { kubeconfig: crossed })).exitCode).not.toBe(0);
      await until(
        () => 'the wrong-cluster refusal to be counted',
        async () => (await proxyMetric('tower_proxy_listener_refusals_total', 'reason="wrong-cluster"')) >= 1,
        10_000,
      );
    });

    it('a client certificate from another CA is refused in the TLS handshake', async () => {
      const evil = await createCertificateAuthority('evil');
      const cert = await issueCertificate(evil, {
        commonName: 'knet-tower:listener-a',
        organizations: ['knet-tower'],
        usage: 'client',
      });
      const real = readFileSync(kubeconfigA, 'utf8');
      const caPem = Buffer.from(/certificate-authority-data: "([^"]+)"/.exec(real)![1]!, 'base64').toString();
      const server = /server: "([^"]+)"/.exec(real)![1]!;
      const file = join(bed.host.dir, 'evil.kubeconfig');
      writeFileSync(
        file,
        renderKubeconfig({
          name: 'evil',
          server,
          caPem,
          credentials: { clientCertificatePem: cert.certPem, clientKeyPem: cert.keyPem },
        }),
      );
      const r = await bed.host.kubectl(['get', '--raw', '/api'], { kubeconfig: file });
      expect(r.exitCode).not.toBe(0);
      // TLS 1.3 sends the refusal after the client's handshake ended: depending on when it lands,
      // Go reports a bad certificate, EOF, a reset, or "server closed idle connection".
      expect(r.stderr).toMatch(/certificate|tls|EOF|connection reset|server closed/i);
      // (counted when the server side of the handshake fails, which may trail the client's exit)
      await until(
        () => 'the TLS refusal to be counted',
        async () => (await proxyMetric('tower_proxy_listener_refusals_total', 'reason="tls"')) >= 1,
        10_000,
      );
      // and without any client certificate
      writeFileSync(file, renderKubeconfig({ name: 'anon', server, caPem, credentials: { token: 'x' } }));
      expect((await bed.host.kubectl(['get', '--raw', '/api'], { kubeconfig: file })).exitCode).not.toBe(0);
    });

    it('a target the agent does not serve is not routed: the ks listener answers 503', async () => {
      const c = await getCluster(bed.host, 'listener-a');
      const port = c.spec!.connection!.kubesphereAPIServerPort!;
      const answer = await new Promise<string>((resolve, reject) => {
        const s = netConnect({ host: '127.0.0.1', port }, () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
        let buf = '';
        s.on('data', (d) => (buf += d.toString()));
        s.on('close', () => resolve(buf));
        s.on('error', reject);
      });
      expect(answer).toMatch(/^HTTP\/1.1 503 ServiceUnavailable/);
      expect(answer).toContain('no agent of cluster listener-a is connected');
    });
  });

  describe('an agent asked for a target outside its allow-list refuses it', () => {
    let server: HttpServer;

    afterAll(() => server?.close());

    it('even from a proxy that holds the pinned key', async () => {
      // A rogue proxy (it has the key the agent pins) that asks the agent for other targets.
      const key = generateHostKey();
      const asked: Record<string, string> = {};
      let resolveDone!: () => void;
      const done = new Promise<void>((r) => (resolveDone = r));
      const ssh = new SshServer({ hostKeys: [key.privateKey] }, (conn: Connection) => {
        conn.on('authentication', (ctx) => ctx.accept());
        conn.on('ready', () => {
          conn.on('session', (accept) =>
            accept().on('exec', (acc) => {
              const s = acc();
              s.write('{"ok":true,"proxyVersion":"rogue","session":"s"}\n');
              s.exit(0);
              s.end();
            }),
          );
          conn.on('request', (accept, _reject, name, info) => {
            accept?.();
            if (name !== 'tcpip-forward' || (info as { bindAddr: string }).bindAddr !== 'kubernetes') return;
            const tries: [string, string, number][] = [
              ['ssh-on-node', '127.0.0.1', 22],
              ['kubesphere-not-served', 'kubesphere', 80],
              ['kubernetes-wrong-port', 'kubernetes', 22],
              ['kubernetes', 'kubernetes', 443],
            ];
            let left = tries.length;
            for (const [label, addr, port] of tries) {
              conn.forwardOut(addr, port, '127.0.0.1', 1, (err, ch) => {
                asked[label] = err ? `refused: ${err.message}` : 'accepted';
                ch?.end();
                if (--left === 0) resolveDone();
              });
            }
          });
        });
      });
      const wss = new WebSocketServer({ noServer: true, handleProtocols: () => SUBPROTOCOL });
      server = createServer();
      server.on('upgrade', (req, sock, head) =>
        wss.handleUpgrade(req, sock, head, (ws) => ssh.injectSocket(createWebSocketStream(ws) as never)),
      );
      const port = await freePort();
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      const rogue = { ...bed.proxy, url: `http://127.0.0.1:${port}`, fingerprint: key.fingerprint };
      const agent = bed.startAgent({
        cluster: 'rogue',
        token: 'rogue-token-0123456789',
        proxy: rogue,
        id: 'rogue',
      });
      await done;
      expect(asked).toEqual({
        'ssh-on-node': expect.stringMatching(/^refused/),
        'kubesphere-not-served': expect.stringMatching(/^refused/),
        'kubernetes-wrong-port': expect.stringMatching(/^refused/),
        kubernetes: 'accepted',
      });
      await agent.stop();
    });
  });
});
