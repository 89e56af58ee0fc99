import { generateWireGuardKeyPair, generateWireGuardPresharedKey } from '@knet/crypto';
import { NetLab } from '@knet/testing';
import { CommandError } from '../src';
import { RecordingLogger } from '@knet/runtime';
import { hostNetFor } from './helpers';

jest.setTimeout(90_000);

let lab: NetLab;
afterAll(async () => {
  await lab?.dispose();
});

it('carries a ping over a WireGuard tunnel between two namespaces, configured through the wg wrapper', async () => {
  lab = await NetLab.create();
  // Private mount namespaces: each host's wireguard-go socket lives in its own /var/run/wireguard.
  const a = await lab.addHost('a', { privateMounts: true });
  const b = await lab.addHost('b', { privateMounts: true });
  await lab.link(a, b, { a: { address: '192.0.2.1/24' }, b: { address: '192.0.2.2/24' } });
  const logger = new RecordingLogger();
  const na = hostNetFor(a, logger).net;
  const nb = hostNetFor(b, logger).net;
  const ka = generateWireGuardKeyPair();
  const kb = generateWireGuardKeyPair();
  const psk = generateWireGuardPresharedKey();

  const implA = await na.wg.createInterface('wg0');
  const implB = await nb.wg.createInterface('wg0');
  expect(implB).toBe(implA);
  expect(['kernel', 'userspace']).toContain(implA);
  const dup = await na.wg.createInterface('wg0', { implementation: implA }).catch((e: unknown) => e);
  expect(dup).toBeInstanceOf(CommandError);

  // a: incremental `wg set` with two secrets (private key and PSK → 0600 temp files);
  // b: a whole config through `wg syncconf` on stdin.
  await na.wg.set('wg0', {
    privateKey: ka.privateKey,
    listenPort: 51820,
    fwmark: 0x20,
    peers: [
      {
        publicKey: kb.publicKey,
        presharedKey: psk,
        endpoint: '192.0.2.2:51821',
        allowedIps: ['198.51.100.2/32'],
        persistentKeepalive: 25,
      },
    ],
  });
  await nb.wg.syncconf('wg0', {
    privateKey: kb.privateKey,
    listenPort: 51821,
    peers: [{ publicKey: ka.publicKey, presharedKey: psk, allowedIps: ['198.51.100.1/32'] }],
  });

  const before = await na.wg.show('wg0');
  expect(before).toMatchObject({
    name: 'wg0',
    publicKey: ka.publicKey,
    hasPrivateKey: true,
    listenPort: 51820,
    fwmark: 0x20,
  });
  expect(before.peers).toEqual([
    {
      publicKey: kb.publicKey,
      hasPresharedKey: true,
      endpoint: '192.0.2.2:51821',
      allowedIps: ['198.51.100.2/32'],
      // The keepalive makes a start at once, so the counters may already move.
      latestHandshake: null,
      transferRx: expect.any(Number),
      transferTx: expect.any(Number),
      persistentKeepalive: 25,
    },
  ]);

  await na.ip.addAddress('wg0', '198.51.100.1/24');
  await nb.ip.addAddress('wg0', '198.51.100.2/24');
  await na.ip.setLink('wg0', { up: true });
  await nb.ip.setLink('wg0', { up: true });
  await a.waitForPing('198.51.100.2', { timeoutMs: 20_000 });
  expect(await b.ping('198.51.100.1')).toBe(true);

  const sa = await na.wg.show('wg0');
  const peerOfA = sa.peers[0]!;
  expect(peerOfA.latestHandshake).toBeInstanceOf(Date);
  expect(Math.abs(peerOfA.latestHandshake!.getTime() - Date.now())).toBeLessThan(120_000);
  expect(peerOfA.transferRx).toBeGreaterThan(0);
  expect(peerOfA.transferTx).toBeGreaterThan(0);
  const sb = await nb.wg.show('wg0');
  expect(sb.publicKey).toBe(kb.publicKey);
  expect(sb.peers[0]).toMatchObject({
    publicKey: ka.publicKey,
    endpoint: '192.0.2.1:51820',
    hasPresharedKey: true,
  });
  expect(sb.peers[0]!.latestHandshake).not.toBeNull();
  expect((await na.wg.showAll()).map((i) => [i.name, i.peers.length])).toEqual([['wg0', 1]]);

  // syncconf keeps the peer's session, and removes peers that are not in the config.
  await nb.wg.syncconf('wg0', {
    privateKey: kb.privateKey,
    listenPort: 51821,
    peers: [{ publicKey: ka.publicKey, presharedKey: psk, allowedIps: ['198.51.100.1/32'] }],
  });
  expect((await nb.wg.show('wg0')).peers[0]!.latestHandshake).not.toBeNull();
  await na.wg.set('wg0', { peers: [{ publicKey: kb.publicKey, remove: true }] });
  expect((await na.wg.show('wg0')).peers).toEqual([]);
  expect(await a.ping('198.51.100.2')).toBe(false);

  // Secrets never reach a command line or a log record.
  const logs = logger.text();
  expect(logs).toContain('wg set wg0 private-key');
  for (const secret of [ka.privateKey, kb.privateKey, psk]) expect(logs).not.toContain(secret);

  await na.wg.deleteInterface('wg0');
  expect(await na.ip.findLink('wg0')).toBeUndefined();
  const shown = await na.wg.show('wg0').catch((e: unknown) => e);
  expect(shown).toBeInstanceOf(CommandError);
  expect(shown).toMatchObject({
    message: expect.stringMatching(/wg show wg0 dump failed \(exit 1\): Unable to access interface/),
  });
});
