import { ExecBridgeFdb, type BridgeFdb } from './fdb';
import { ExecIpRoute } from './ip';
import type { IpRoute } from './ip-types';
import { ExecIptables, type IptablesBackend } from './iptables';
import { ExecPinger, type Pinger } from './ping';
import type { CommandRunner, Logger } from './runner';
import { ExecSysctl, type Sysctl } from './sysctl';
import { ExecWireGuard, type WireGuard } from './wireguard';
import { FakeBridgeFdb } from './fakes/fake-bridge-fdb';
import { FakeIpRoute } from './fakes/fake-ip-route';
import { FakeIptables } from './fakes/fake-iptables';
import { FakePinger } from './fakes/fake-pinger';
import { FakeSysctl } from './fakes/fake-sysctl';
import { FakeWireGuard } from './fakes/fake-wireguard';

/** Every wrapper, bound to one runner (and so to one namespace). */
export interface HostNet {
  ip: IpRoute;
  fdb: BridgeFdb;
  sysctl: Sysctl;
  iptables: IptablesBackend;
  ip6tables: IptablesBackend;
  wg: WireGuard;
  /** ICMP echo (`ping`), e.g. to check a gateway answers over an overlay. */
  ping: Pinger;
}

/** The real wrappers over `runner`. */
export function createHostNet(
  runner: CommandRunner,
  options: { logger?: Logger; lockWaitSeconds?: number } = {},
): HostNet {
  const wait = options.lockWaitSeconds === undefined ? {} : { lockWaitSeconds: options.lockWaitSeconds };
  return {
    ip: new ExecIpRoute(runner),
    fdb: new ExecBridgeFdb(runner),
    sysctl: new ExecSysctl(runner),
    iptables: new ExecIptables(runner, { family: 'inet', ...wait }),
    ip6tables: new ExecIptables(runner, { family: 'inet6', ...wait }),
    wg: new ExecWireGuard(runner, options.logger ? { logger: options.logger } : {}),
    ping: new ExecPinger(runner),
  };
}

export interface FakeHostNet extends HostNet {
  ip: FakeIpRoute;
  fdb: FakeBridgeFdb;
  sysctl: FakeSysctl;
  iptables: FakeIptables;
  ip6tables: FakeIptables;
  wg: FakeWireGuard;
  ping: FakePinger;
}

/** In-memory fakes sharing one link table, like one network namespace. */
export function createFakeHostNet(
  options: { kernelWireGuard?: boolean; sysctls?: Record<string, string> } = {},
): FakeHostNet {
  const ip = new FakeIpRoute();
  return {
    ip,
    fdb: new FakeBridgeFdb(ip),
    sysctl: new FakeSysctl(options.sysctls ?? {}, ip),
    iptables: new FakeIptables('inet'),
    ip6tables: new FakeIptables('inet6'),
    wg: new FakeWireGuard({ ipRoute: ip, kernelSupport: options.kernelWireGuard ?? true }),
    ping: new FakePinger({ ip }),
  };
}
