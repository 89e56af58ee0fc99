/**
 * What users see when something is wrong: one line on stderr naming what failed and what to check,
 * a non-zero exit, and nothing half-configured that a re-run would not fix.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PodgwLab, type PodgwClient as Client } from '@knet/testing';

jest.setTimeout(120_000);

let w: PodgwLab;
let c: Client;

beforeAll(async () => {
  w = await PodgwLab.create();
  c = await w.addClient('lonely-0');
});
afterAll(() => w?.dispose());

const oneLine = (s: string) => s.trim().split('\n');

describe('client-init when the gateway cannot be reached', () => {
  it('the gateway name does not resolve: exit 1, one line with the name, the DNS server and a hint', async () => {
    w.setClusterRecord('192.0.2.99');
    writeFileSync(join(w.configDir, 'other.sh'), 'GATEWAY_NAME="missing.vpn.svc.cluster.local"\n');
    const r = await w.clientInit(c, [
      `--settings=${join(w.configDir, 'settings.sh')},${join(w.configDir, 'other.sh')}`,
    ]);
    expect(r.exitCode).toBe(1);
    expect(oneLine(r.stderr)).toEqual([
      'client-init: cannot resolve GATEWAY_NAME missing.vpn.svc.cluster.local at 198.51.100.10: ENOTFOUND; is the gateway pod running, and its headless Service selecting it?',
    ]);
  });

  it('the name resolves but no gateway answers DHCP: exit 1, one line with what was sent and heard', async () => {
    // The cluster DNS points at 192.0.2.99, where no gateway pod runs.
    const r = await w.clientInit(c, ['--dhcp-timeout=3s']);
    expect(r.exitCode).toBe(1);
    const lines = oneLine(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^client-init: vxlan0: no DHCP lease within 3000 ms: sent \d+ DISCOVER.*; heard 0 OFFER, 0 ACK, 0 NAK/,
    );
    // Isolated but not routed: no default route anywhere, so nothing leaks while it is retried.
    expect((await c.host.ip('route', 'show', 'default')).trim()).toBe('');
    expect((await c.host.ip('-6', 'route', 'show', 'default')).trim()).toBe('');
    // The kept routes let the next attempt find the pod network's gateway again.
    expect(await c.host.ip('route', 'show', 'proto', '77')).toContain('198.51.100.10 via 192.0.2.1 dev eth0');
  });

  it('bad settings: exit 2, one line naming the setting, its value and the file line', async () => {
    writeFileSync(join(w.configDir, 'bad.sh'), '# ok\nVXLAN_ID="forty-two"\n');
    const r = await w.clientInit(c, [`--settings=${join(w.configDir, 'bad.sh')}`]);
    expect(r.exitCode).toBe(2);
    expect(oneLine(r.stderr)).toEqual([
      `client-init: error: VXLAN_ID="forty-two" (from ${join(w.configDir, 'bad.sh')}:2): must be an integer from 1 to 16777215`,
    ]);
  });

  it('a bad nat.conf line: exit 2, one line', async () => {
    writeFileSync(join(w.configDir, 'bad-nat.conf'), 'web 10 tcp:80\nweb 11\n');
    const r = await w.clientInit(c, [`--nat-config=${join(w.configDir, 'bad-nat.conf')}`]);
    expect(r.exitCode).toBe(2);
    expect(oneLine(r.stderr)).toEqual([
      `client-init: error: ${join(w.configDir, 'bad-nat.conf')}:2: hostname web is already listed at ${join(w.configDir, 'bad-nat.conf')}:1`,
    ]);
  });
});
