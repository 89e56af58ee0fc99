/**
 * The server half of the restart floor (bench/tower/floor.ts), in a process of its own so that its
 * CPU time is only this: what any proxy must do, on one event loop, to serve N clusters again after
 * a restart, with tower-proxy's libraries and key types and nothing else (no API server, no
 * controller, no tunnel behind the listeners). Bundled and forked by the bench:
 *
 *   node floor-server.cjs <clusters>
 *
 * Over IPC it answers `{ cmd: 'cpu' }` with its CPU time so far, and reports each step:
 * `ready` (CA, client certificate, SSH port), then on `{ cmd: 'listen' }` issues a serving
 * certificate per cluster and starts a TLS listener for each (its own context: key, certificate
 * and CA, as a cluster listener has), answering `listening` with the ports. SSH connections are
 * accepted on the SSH port (ed25519 host key, as tower-proxy's; any user); each TLS connection must
 * present the client certificate and gets `200 ok` to one request.
 */
import { type AddressInfo } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { Server as SshServer } from 'ssh2';
import { createCertificateAuthority, issueCertificate } from '@knet/crypto';
import { generateHostKey } from '@knet/tunnel';

export type FloorRequest = { cmd: 'cpu' } | { cmd: 'listen' };
export type FloorReport =
  | { kind: 'ready'; caPem: string; client: { certPem: string; keyPem: string }; sshPort: number }
  | { kind: 'listening'; ports: number[]; issueCpuMs: number; contextCpuMs: number }
  | { kind: 'cpu'; ms: number; sshReady: number };

const clusters = Number(process.argv[2]);
const send = (r: FloorReport) => process.send?.(r);
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function main(): Promise<void> {
  if (!Number.isInteger(clusters) || clusters < 1) throw new Error('usage: floor-server.cjs <clusters>');
  const ca = await createCertificateAuthority('knet floor CA');
  const client = await issueCertificate(ca, {
    commonName: 'knet-tower:floor',
    organizations: ['knet-tower'],
    usage: 'client',
    validityDays: 30,
  });
  let sshReady = 0;
  const ssh = new SshServer({ hostKeys: [generateHostKey().privateKey] }, (conn) => {
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('ready', () => sshReady++);
    conn.on('error', () => undefined);
  });
  await new Promise<void>((r) => ssh.listen(0, '127.0.0.1', r));
  const servers: TlsServer[] = [];

  process.on('message', (m: FloorRequest) => {
    if (m.cmd === 'cpu') send({ kind: 'cpu', ms: cpuMs(), sshReady });
    else void listen();
  });
  const listen = async () => {
    const t0 = cpuMs();
    const certs = [];
    for (let i = 0; i < clusters; i++)
      certs.push(
        await issueCertificate(ca, {
          commonName: `mc-floor-${i}`,
          dnsNames: ['kubernetes', 'kubernetes.default', `mc-floor-${i}`, `mc-floor-${i}.ns.svc`],
          ipAddresses: ['127.0.0.1'],
          usage: 'server',
          validityDays: 30,
        }),
      );
    const t1 = cpuMs();
    for (const cert of certs) {
      const srv = createTlsServer(
        {
          cert: cert.certPem,
          key: cert.keyPem,
          ca: [ca.certPem],
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
        },
        (s) => {
          s.on('error', () => s.destroy());
          s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
        },
      );
      srv.on('tlsClientError', () => undefined);
      servers.push(srv);
    }
    const t2 = cpuMs();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    send({
      kind: 'listening',
      ports: servers.map((s) => (s.address() as AddressInfo).port),
      issueCpuMs: t1 - t0,
      contextCpuMs: t2 - t1,
    });
  };
  send({ kind: 'ready', caPem: ca.certPem, client, sshPort: (ssh.address() as AddressInfo).port });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
