import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingLogger } from '@knet/runtime';
import { cniSubnet, updateCniConfig, withCniSubnet } from './cni';

/** Kilo's manifests' 10-kilo.conflist (kilo-kubeadm.yaml), as shipped: no subnet yet. */
const KILO_CONFLIST = JSON.stringify({
  cniVersion: '0.4.0',
  name: 'kilo',
  plugins: [
    {
      name: 'kubernetes',
      type: 'bridge',
      bridge: 'kube-bridge',
      isDefaultGateway: true,
      forceAddress: true,
      mtu: 1420,
      ipam: { type: 'host-local' },
    },
    { type: 'portmap', snat: true, capabilities: { portMappings: true } },
  ],
});

describe('CNI config (Kilo cni.go)', () => {
  it('writes the pod CIDR into every plugin with ipam, leaving the rest', () => {
    const out = JSON.parse(withCniSubnet(KILO_CONFLIST, '10.2.1.0/24')) as {
      plugins: Record<string, unknown>[];
    };
    expect(out.plugins[0]?.['ipam']).toEqual({ type: 'host-local', ranges: [[{ subnet: '10.2.1.0/24' }]] });
    expect(out.plugins[1]).toEqual({ type: 'portmap', snat: true, capabilities: { portMappings: true } });
    expect(cniSubnet(JSON.stringify(out))).toBe('10.2.1.0/24');
    expect(cniSubnet(KILO_CONFLIST)).toBeUndefined();
  });

  it.each([
    ['{', /not JSON/],
    ['{"name":"x"}', /no "plugins" list/],
    ['{"plugins":[1]}', /plugin 0 is not an object/],
    ['{"plugins":[{"type":"loopback"}]}', /no plugin has an "ipam" section/],
  ])('refuses %s', (text, message) => {
    expect(() => withCniSubnet(text, '10.2.1.0/24')).toThrow(message);
  });

  it('updates the file only when the CIDR differs, and never throws', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kilo-cni-'));
    try {
      const path = join(dir, '10-kilo.conflist');
      const logger = new RecordingLogger();
      writeFileSync(path, KILO_CONFLIST);
      expect(await updateCniConfig(path, '10.2.1.0/24', logger)).toBe(true);
      expect(cniSubnet(readFileSync(path, 'utf8'))).toBe('10.2.1.0/24');
      expect(await updateCniConfig(path, '10.2.1.0/24', logger)).toBe(false);
      expect(await updateCniConfig(path, '10.2.2.0/24', logger)).toBe(true);
      expect(await updateCniConfig(path, undefined, logger)).toBe(false);
      expect(await updateCniConfig(join(dir, 'missing'), '10.2.1.0/24', logger)).toBe(false);
      expect(logger.lines.at(-1)).toMatchObject({
        level: 'warn',
        msg: 'kilo-agent: failed to set the pod CIDR in the CNI config',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
