import { createFakeHostNet } from '@knet/host-net';
import { ensureIptables, loadConfig, planGateway } from '@knet/podgw';
import { Registry, RecordingLogger } from '@knet/runtime';
import { RulesWatch } from './rules-watch';

function setup(reconcileOverride?: () => Promise<string[]>) {
  const net = createFakeHostNet();
  const { settings } = loadConfig(
    { settings: [], natConfig: '/nonexistent/nat.conf' },
    { VPN_INTERFACE: 'tun0', VPN_BLOCK_OTHER_TRAFFIC: 'true', VPN_LOCAL_CIDRS: '10.0.0.0/8' },
  );
  const plan = planGateway(settings, [], { podInterface: 'eth0', podGateway: '192.0.2.1' });
  const logger = new RecordingLogger();
  const registry = new Registry();
  const apply = async () => [
    ...(await ensureIptables(net.iptables, plan.iptables, ['filter'])),
    ...(await ensureIptables(net.iptables, plan.iptables, ['nat'])),
  ];
  const watch = new RulesWatch({
    reconcile: reconcileOverride ?? apply,
    intervalMs: 60_000,
    logger,
    registry,
  });
  return { net, watch, logger, registry, apply };
}

describe('RulesWatch', () => {
  it('restores rules a VPN container flushed or reordered, and counts it', async () => {
    const { net, watch, logger, registry, apply } = setup();
    await apply(); // gateway-init
    await watch.start();
    try {
      expect(watch.ok).toBe(true);
      const forward = () => net.iptables.command(['-S', 'FORWARD']);
      expect(await forward()).toContain('-A FORWARD -j KNET-PGW-FWD');
      expect(await registry.metrics()).toContain('knet_podgw_rules_repairs_total 0');

      await net.iptables.command(['-F', 'FORWARD']); // wg-quick's PostDown, an OpenVPN down script…
      await watch.check();
      expect(await forward()).toContain('-A FORWARD -j KNET-PGW-FWD');
      await net.iptables.command(['-I', 'FORWARD', '1', '-j', 'ACCEPT']); // …or a rule put before ours
      await watch.check();
      expect((await forward()).split('\n').filter((l) => l.startsWith('-A'))[0]).toBe(
        '-A FORWARD -j KNET-PGW-FWD',
      );
      await watch.check(); // nothing changed since: nothing repaired
      expect(await registry.metrics()).toContain('knet_podgw_rules_repairs_total 2');
      expect(logger.messages('warn')).toHaveLength(2);
      expect(await registry.metrics()).toContain('knet_podgw_rules_ok 1');
    } finally {
      watch.stop();
    }
  });

  it('is not ok while the rules cannot be restored, and ok again once they are', async () => {
    let fail = true;
    const { watch, logger, registry } = setup(async () => {
      if (fail) throw new Error('iptables-restore: line 3 failed');
      return [];
    });
    await watch.start();
    try {
      expect(watch.ok).toBe(false);
      expect(logger.messages('error')).toEqual([
        "could not check or restore the gateway's iptables rules: not ready until they are",
      ]);
      expect(await registry.metrics()).toContain('knet_podgw_rules_check_failures_total 1');
      expect(await registry.metrics()).toContain('knet_podgw_rules_ok 0');
      fail = false;
      await watch.check();
      expect(watch.ok).toBe(true);
    } finally {
      watch.stop();
    }
  });

  it('checks every interval until stopped', async () => {
    jest.useFakeTimers();
    try {
      let checks = 0;
      const { watch } = setup(async () => {
        checks++;
        return [];
      });
      await watch.start();
      await jest.advanceTimersByTimeAsync(180_000);
      expect(checks).toBe(4);
      watch.stop();
      await jest.advanceTimersByTimeAsync(180_000);
      expect(checks).toBe(4);
    } finally {
      jest.useRealTimers();
    }
  });
});
