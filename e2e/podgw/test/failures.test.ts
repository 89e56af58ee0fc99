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

  it("a bad nat.conf line for this pod: exit 2, one line; another pod's bad line: a warning only", async () => {
    const file = join(w.configDir, 'bad-nat.conf');
    writeFileSync(file, 'web 10 tcp:80\nlonely 1000\nweb 11\n');
    const r = await w.clientInit(c, [`--nat-config=${file}`, '--dhcp-timeout=1s']);
    expect(r.exitCode).toBe(2);
    expect(oneLine(r.stderr)).toEqual([
      `client-init: error: ${file}:2: static address "1000" must be the last octet, from 2 to 19 (below VXLAN_GATEWAY_FIRST_DYNAMIC_IP=20) (this pod's line: fix it and the pod starts; other pods are not affected)`,
    ]);
    // web's duplicate line stops web only: this pod goes on (to the DHCP timeout: no gateway here).
    writeFileSync(file, 'web 10 tcp:80\nweb 11\n');
    const other = await w.clientInit(c, [`--nat-config=${file}`, '--dhcp-timeout=1s']);
    expect(other.exitCode).toBe(1);
    expect(other.stdout).toContain(
      `${file}:2: hostname web is already listed at ${file}:1 (line skipped: pod web will not start)`,
    );
    expect(oneLine(other.stderr)[0]).toMatch(/^client-init: vxlan0: no DHCP lease within 1000 ms/);
  });
});
