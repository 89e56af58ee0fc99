import { existsSync, readFileSync, statSync } from 'node:fs';
import { generateWireGuardKeyPair, generateWireGuardPresharedKey } from '@knet/crypto';
import { WG_DUMP_A, WG_DUMP_ALL, WG_DUMP_B, WG_DUMP_BEFORE } from '../test/fixtures/captured';
import { CommandError } from './errors';
import { FakeIpRoute } from './fakes/fake-ip-route';
import { FakeCommandRunner } from './fakes/fake-runner';
import { FakeWireGuard } from './fakes/fake-wireguard';
import { ExecWireGuard, wireguardGoError } from './wireguard';
import { parseWgDump, parseWgDumpAll, renderWgConfig, wgSetArgs, WgDumpParseError } from './wireguard-format';

const A_PUB = 'XMhyCUqIRcOnLP2r6jtcaZqK6yReW178buDEXti+9Ro=';
const B_PUB = 'WZ8sUbIeVc+6c5IDhqRlAwKYr4/ZWEnbkni+LBYxs2s=';
const C_PUB = 'uJcpaaFH/xhKDGDpVTo9dJ86MTjwlvc1hJvLcC5zBR4=';

describe('parseWgDump on captured output', () => {
  it('before any handshake: (none), off, endpoints, allowed-ips lists, never', () => {
    const s = parseWgDump(WG_DUMP_BEFORE, 'wg0');
    expect(s).toEqual({
      name: 'wg0',
      publicKey: A_PUB,
      hasPrivateKey: true,
      listenPort: 51820,
      fwmark: 0x20,
      peers: [
        {
          publicKey: B_PUB,
          hasPresharedKey: true,
          endpoint: '192.0.2.2:51821',
          allowedIps: ['10.99.0.2/32', 'fd00::2/128'],
          latestHandshake: null,
          transferRx: 0,
          transferTx: 148,
          persistentKeepalive: 25,
        },
        {
          publicKey: C_PUB,
          hasPresharedKey: false,
          endpoint: null,
          allowedIps: ['10.99.0.3/32'],
          latestHandshake: null,
          transferRx: 0,
          transferTx: 0,
          persistentKeepalive: null,
        },
      ],
    });
    expect(JSON.stringify(s)).not.toContain('2N7U1Qbbe'); // the private key is not kept
  });

  it('after a ping: handshake time and transfer counters; learned endpoint on the responder', () => {
    const a = parseWgDump(WG_DUMP_A, 'wg0');
    expect(a.peers[0]).toMatchObject({
      latestHandshake: new Date(1795289701 * 1000),
      transferRx: 732,
      transferTx: 968,
    });
    const b = parseWgDump(WG_DUMP_B, 'wg0');
    expect(b).toMatchObject({ listenPort: 51821, fwmark: null });
    expect(b.peers[0]).toMatchObject({
      publicKey: A_PUB,
      endpoint: '192.0.2.1:51820',
      transferRx: 820,
      transferTx: 732,
    });
  });

  it('handles an interface without keys, a peer without allowed IPs, and IPv6 endpoints', () => {
    const text = `(none)\t(none)\t45948\toff\n${C_PUB}\t(none)\t[2001:db8::2]:51821\t(none)\t0\t0\t0\toff\n`;
    expect(parseWgDump(text, 'wg1')).toEqual({
      name: 'wg1',
      publicKey: null,
      hasPrivateKey: false,
      listenPort: 45948,
      fwmark: null,
      peers: [
        {
          publicKey: C_PUB,
          hasPresharedKey: false,
          endpoint: '[2001:db8::2]:51821',
          allowedIps: [],
          latestHandshake: null,
          transferRx: 0,
          transferTx: 0,
          persistentKeepalive: null,
        },
      ],
    });
  });

  it('parses wg show all dump', () => {
    const all = parseWgDumpAll(WG_DUMP_ALL + `wg1\t(none)\t(none)\t1234\toff\n`);
    expect(all.map((i) => [i.name, i.listenPort, i.peers.length])).toEqual([
      ['wg0', 51820, 2],
      ['wg1', 1234, 0],
    ]);
    expect(parseWgDumpAll('')).toEqual([]);
  });

  it.each([
    ['', /empty output/],
    ['a\tb\tc\n', /3 fields, want 4/],
    [`(none)\t(none)\t1\toff\n${C_PUB}\t(none)\n`, /2 fields, want 8/],
    [`(none)\t(none)\tx\toff\n`, /invalid listen-port/],
    [`(none)\t(none)\t1\toff\nnot-a-key\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`, /invalid peer public key/],
  ])('rejects malformed dump %#', (text, err) => {
    expect(() => parseWgDump(text, 'wg0')).toThrow(WgDumpParseError);
    expect(() => parseWgDump(text, 'wg0')).toThrow(err);
  });
});

describe('renderWgConfig and wgSetArgs', () => {
  const kp = generateWireGuardKeyPair();
  const psk = generateWireGuardPresharedKey();

  it('renders a wg-quick-less config', () => {
    expect(
      renderWgConfig({
        privateKey: kp.privateKey,
        listenPort: 51820,
        fwmark: 0x20,
        peers: [
          {
            publicKey: B_PUB,
            presharedKey: psk,
            allowedIps: ['198.51.100.2/32', '2001:db8::2/128'],
            endpoint: '192.0.2.2:51821',
            persistentKeepalive: 25,
          },
          { publicKey: C_PUB },
        ],
      }),
    ).toBe(
      [
        '[Interface]',
        `PrivateKey = ${kp.privateKey}`,
        'ListenPort = 51820',
        'FwMark = 0x20',
        '',
        '[Peer]',
        `PublicKey = ${B_PUB}`,
        `PresharedKey = ${psk}`,
        'AllowedIPs = 198.51.100.2/32, 2001:db8::2/128',
        'Endpoint = 192.0.2.2:51821',
        'PersistentKeepalive = 25',
        '',
        '[Peer]',
        `PublicKey = ${C_PUB}`,
        '',
      ].join('\n'),
    );
  });

  it('builds wg set arguments with secrets by reference only', () => {
    const { args, secrets } = wgSetArgs(
      'wg0',
      {
        privateKey: kp.privateKey,
        listenPort: 51820,
        fwmark: 'off',
        peers: [
          {
            publicKey: B_PUB,
            presharedKey: psk,
            endpoint: '[2001:db8::2]:51821',
            persistentKeepalive: 0,
            allowedIps: ['198.51.100.0/24'],
          },
          { publicKey: C_PUB, remove: true },
        ],
      },
      (i) => `/run/secret-${i}`,
    );
    expect(args.join(' ')).toBe(
      `set wg0 private-key /run/secret-0 listen-port 51820 fwmark off peer ${B_PUB} preshared-key /run/secret-1 endpoint [2001:db8::2]:51821 persistent-keepalive off allowed-ips 198.51.100.0/24 peer ${C_PUB} remove`,
    );
    expect(secrets).toEqual([kp.privateKey, psk]);
  });

  it.each<[string, () => unknown, RegExp]>([
    [
      'bad private key',
      () => renderWgConfig({ privateKey: 'secret-but-bad', peers: [] }),
      /invalid WireGuard private key/,
    ],
    [
      'bad peer key',
      () => wgSetArgs('wg0', { peers: [{ publicKey: 'x' }] }, () => ''),
      /invalid WireGuard peer public key/,
    ],
    [
      'bad psk',
      () => wgSetArgs('wg0', { peers: [{ publicKey: B_PUB, presharedKey: 'y' }] }, () => ''),
      /invalid WireGuard preshared key/,
    ],
    [
      'bad endpoint',
      () => wgSetArgs('wg0', { peers: [{ publicKey: B_PUB, endpoint: '2001:db8::2:51820' }] }, () => ''),
      /invalid WireGuard endpoint/,
    ],
    [
      'bad allowed ip',
      () => wgSetArgs('wg0', { peers: [{ publicKey: B_PUB, allowedIps: ['10.0.0.1'] }] }, () => ''),
      /invalid allowed IP/,
    ],
    ['bad port', () => wgSetArgs('wg0', { listenPort: 70000 }, () => ''), /invalid WireGuard port/],
  ])('rejects %s without echoing the value', (_name, fn, err) => {
    expect(fn).toThrow(err);
    expect(fn).not.toThrow(/secret-but-bad/);
  });
});

describe('ExecWireGuard over a scripted runner', () => {
  const kp = generateWireGuardKeyPair();
  const psk = generateWireGuardPresharedKey();

  it('passes keys in 0600 files that are gone afterwards, never on the command line', async () => {
    const seen: { path: string; mode: number; content: string }[] = [];
    const runner = new FakeCommandRunner((c) => {
      for (const a of c.args.filter((x) => x.includes('knet-wg-'))) {
        seen.push({ path: a, mode: statSync(a).mode & 0o777, content: readFileSync(a, 'utf8') });
      }
      return undefined;
    });
    const wg = new ExecWireGuard(runner);
    await wg.set('wg0', { privateKey: kp.privateKey, peers: [{ publicKey: B_PUB, presharedKey: psk }] });
    await wg.syncconf('wg0', { privateKey: kp.privateKey, peers: [] });
    await wg.set('wg0', { listenPort: 1 });
    expect(seen.map((s) => [s.mode, s.content])).toEqual([
      [0o600, `${kp.privateKey}\n`],
      [0o600, `${psk}\n`],
      [0o600, `[Interface]\nPrivateKey = ${kp.privateKey}\n`],
    ]);
    for (const s of seen) expect(existsSync(s.path)).toBe(false);
    const lines = runner.commandLines().join('\n');
    expect(lines).not.toContain(kp.privateKey);
    expect(lines).not.toContain(psk);
    expect(runner.commandLines()[2]).toBe('wg set wg0 listen-port 1');
  });

  it('removes the key files when wg fails too', async () => {
    let path = '';
    const runner = new FakeCommandRunner((c) => {
      path = c.args[3] ?? '';
      return { exitCode: 1, stderr: 'Unable to modify interface: No such device' };
    });
    await expect(new ExecWireGuard(runner).set('wg9', { privateKey: kp.privateKey })).rejects.toThrow(
      /No such device/,
    );
    expect(path).toMatch(/knet-wg-/);
    expect(existsSync(path)).toBe(false);
  });

  it('falls back to wireguard-go when the kernel has no WireGuard, only in auto mode', async () => {
    const noKernel = (): FakeCommandRunner =>
      new FakeCommandRunner((c) =>
        c.cmd === 'ip' ? { exitCode: 2, stderr: 'Error: Unknown device type.' } : undefined,
      );
    const r1 = noKernel();
    expect(await new ExecWireGuard(r1).createInterface('wg0')).toBe('userspace');
    expect(r1.commandLines()).toEqual(['ip link add wg0 type wireguard', 'wireguard-go wg0']);
    expect(r1.calls[1]!.options.daemon).toBe(true);
    await expect(
      new ExecWireGuard(noKernel()).createInterface('wg0', { implementation: 'kernel' }),
    ).rejects.toThrow(/Unknown device type/);
    const r2 = new FakeCommandRunner();
    expect(await new ExecWireGuard(r2).createInterface('wg0')).toBe('kernel');
    const exists = new FakeCommandRunner(() => ({ exitCode: 2, stderr: 'RTNETLINK answers: File exists' }));
    await expect(new ExecWireGuard(exists).createInterface('wg0')).rejects.toMatchObject({ kind: 'exists' });
    const r3 = new FakeCommandRunner();
    expect(await new ExecWireGuard(r3).createInterface('wg0', { implementation: 'userspace' })).toBe(
      'userspace',
    );
    expect(r3.commandLines()).toEqual(['wireguard-go wg0']);
  });

  it('says in one line why neither the kernel nor wireguard-go made the device (auto), without the banner', async () => {
    const banner = [
      '┌──────────────────────────────────────────────────────┐',
      '│   Running wireguard-go is not required because this  │',
      '└──────────────────────────────────────────────────────┘',
    ].join('\n');
    const neither = new FakeCommandRunner((c) =>
      c.cmd === 'ip'
        ? { exitCode: 2, stderr: 'Error: Unknown device type.' }
        : {
            exitCode: 1,
            stderr: `${banner}\nERROR: (kilo0) 2026/12/06 19:34:45 Failed to create TUN device: open /dev/net/tun: no such file or directory\n`,
          },
    );
    const err = await new ExecWireGuard(neither).createInterface('kilo0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as Error).message).toBe(
      "cannot create WireGuard device kilo0: the kernel has no WireGuard (ip link add kilo0 type wireguard: unsupported), and wireguard-go failed: Failed to create TUN device: open /dev/net/tun: no such file or directory; load the kernel's wireguard module, or give this process /dev/net/tun for wireguard-go",
    );
    // Asked for wireguard-go alone, its own error stays as it was.
    await expect(
      new ExecWireGuard(neither).createInterface('kilo0', { implementation: 'userspace' }),
    ).rejects.toThrow(/^wireguard-go kilo0 failed/);
    expect(wireguardGoError(`${banner}\nsomething else\n`)).toBe('something else');
    expect(wireguardGoError('')).toBe('it printed nothing');
  });
});

describe('FakeWireGuard', () => {
  const a = generateWireGuardKeyPair();
  const b = generateWireGuardKeyPair();
  const c = generateWireGuardKeyPair();

  it('behaves like wg for set/syncconf/show, with links in a FakeIpRoute', async () => {
    const ip = new FakeIpRoute();
    const wg = new FakeWireGuard({ ipRoute: ip, kernelSupport: false });
    expect(await wg.createInterface('wg0')).toBe('userspace');
    expect((await ip.getLink('wg0')).kind).toBe('tun');
    await expect(wg.createInterface('wg0')).rejects.toMatchObject({ kind: 'exists' });
    await expect(wg.createInterface('wg1', { implementation: 'kernel' })).rejects.toThrow(
      /Unknown device type/,
    );

    await wg.set('wg0', {
      privateKey: a.privateKey,
      listenPort: 51820,
      fwmark: 0x20,
      peers: [
        {
          publicKey: b.publicKey,
          allowedIps: ['198.51.100.2/32', '198.51.100.9/32'],
          endpoint: '192.0.2.2:51821',
          persistentKeepalive: 25,
        },
        { publicKey: c.publicKey, allowedIps: ['198.51.100.3/32'] },
      ],
    });
    // An allowed IP moves to the peer that claims it last.
    await wg.set('wg0', {
      peers: [{ publicKey: c.publicKey, allowedIps: ['198.51.100.3/32', '198.51.100.9/32'] }],
    });
    let s = await wg.show('wg0');
    expect(s).toMatchObject({ publicKey: a.publicKey, hasPrivateKey: true, listenPort: 51820, fwmark: 0x20 });
    expect(s.peers.map((p) => [p.publicKey === b.publicKey ? 'b' : 'c', p.allowedIps])).toEqual([
      ['b', ['198.51.100.2/32']],
      ['c', ['198.51.100.3/32', '198.51.100.9/32']],
    ]);

    wg.recordHandshake('wg0', b.publicKey, { rx: 100, tx: 200, at: new Date(1_700_000_000_000) });
    await wg.syncconf('wg0', {
      privateKey: a.privateKey,
      listenPort: 51820,
      peers: [{ publicKey: b.publicKey, allowedIps: ['198.51.100.2/32'] }],
    });
    s = await wg.show('wg0');
    expect(s.fwmark).toBeNull();
    expect(s.peers).toEqual([
      {
        publicKey: b.publicKey,
        hasPresharedKey: false,
        endpoint: '192.0.2.2:51821',
        allowedIps: ['198.51.100.2/32'],
        latestHandshake: new Date(1_700_000_000_000),
        transferRx: 100,
        transferTx: 200,
        // Like wg: syncconf leaves a kept peer's keepalive alone when the config does not give one.
        persistentKeepalive: 25,
      },
    ]);
    await wg.set('wg0', { peers: [{ publicKey: b.publicKey, remove: true }] });
    expect((await wg.showAll()).map((i) => i.peers.length)).toEqual([0]);

    await wg.deleteInterface('wg0');
    const err = await wg.show('wg0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    // Without the kernel module wg finds neither a device nor a socket (test/fake-parity.test.ts).
    expect(err).toMatchObject({
      message: 'wg show wg0 dump failed (exit 1): Unable to access interface: Protocol not supported',
    });
    await expect(wg.set('wg0', { listenPort: 1 })).rejects.toThrow(
      /Unable to modify interface: Protocol not supported/,
    );
    await expect(wg.deleteInterface('wg0')).rejects.toMatchObject({ kind: 'no-device' });
  });

  it('validates keys like the real wrapper', async () => {
    const wg = new FakeWireGuard();
    await wg.createInterface('wg0');
    await expect(wg.set('wg0', { privateKey: 'nope' })).rejects.toThrow(/invalid WireGuard private key/);
    await expect(
      wg.syncconf('wg0', { privateKey: a.privateKey, peers: [{ publicKey: 'nope' }] }),
    ).rejects.toThrow(/invalid WireGuard peer public key/);
    expect(() => wg.recordHandshake('wg0', b.publicKey)).toThrow(/no peer/);
  });
});
