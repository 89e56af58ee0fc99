import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetLab } from '@knet/testing';
import { CommandNotFoundError, createHostNet, ExecaRunner } from '../src';

jest.setTimeout(60_000);

let lab: NetLab;
let onlyIp: string;
beforeAll(() => {
  // A PATH with nothing but `ip`, so that `ip netns exec` works but the command inside is missing.
  onlyIp = mkdtempSync(join(tmpdir(), 'knet-path-'));
  symlinkSync('/usr/sbin/ip', join(onlyIp, 'ip'));
});
afterAll(async () => {
  await lab?.dispose();
  rmSync(onlyIp, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<CommandNotFoundError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CommandNotFoundError);
  if (!(err instanceof CommandNotFoundError)) throw new Error(`not a CommandNotFoundError: ${String(err)}`);
  expect(err.message).not.toContain('\n');
  return err;
}

it('names the missing ip binary and its Debian package in one line', async () => {
  const net = createHostNet(new ExecaRunner({ env: { PATH: '/nonexistent' } }));
  const err = await failure(net.ip.listLinks());
  expect(err.message).toBe(
    'ip: command not found (install the Debian package "iproute2"); needed for: ip -j -d link show',
  );
  expect(err).toMatchObject({ binary: 'ip', debianPackage: 'iproute2', kind: 'command-not-found' });
});

it.each([
  [
    'iptables-restore',
    'iptables',
    (n: ReturnType<typeof createHostNet>) => n.iptables.restore('*filter\nCOMMIT\n'),
  ],
  ['sysctl', 'procps', (n: ReturnType<typeof createHostNet>) => n.sysctl.get('net.ipv4.ip_forward')],
  ['bridge', 'iproute2', (n: ReturnType<typeof createHostNet>) => n.fdb.list()],
])('names %s and the package %s', async (binary, pkg, call) => {
  const err = await failure(call(createHostNet(new ExecaRunner({ env: { PATH: '/nonexistent' } }))));
  expect(err.binary).toBe(binary);
  expect(err.message).toMatch(
    new RegExp(`^${binary}: command not found \\(install the Debian package "${pkg}"\\); needed for: `),
  );
});

it('names a wg binary missing inside a namespace (behind ip netns exec) in one line', async () => {
  lab = await NetLab.create();
  const host = await lab.addHost();
  const net = createHostNet(new ExecaRunner({ namespace: host.name, env: { PATH: onlyIp } }));
  const err = await failure(net.wg.show('wg0'));
  expect(err.message).toBe(
    `wg: command not found (install the Debian package "wireguard-tools"); needed for: ip netns exec ${host.name} wg show wg0 dump`,
  );
  expect(err.debianPackage).toBe('wireguard-tools');
  // ip itself still works in that PATH
  expect((await net.ip.listLinks()).map((l) => l.name)).toEqual(['lo']);
});
