import { z } from 'zod';
import { formatCommandLine } from './errors';
import { parseJsonArray } from './ip-parse';
import type { CommandRunner } from './runner';

/** The all-zeros MAC: on a VXLAN device, entries with it flood BUM traffic to their `dst`. */
export const ZERO_MAC = '00:00:00:00:00:00';

export interface FdbEntry {
  mac: string;
  dev: string;
  /** Remote VTEP (VXLAN entries). */
  dst?: string;
  vlan?: number;
  vni?: number;
  /** Remote UDP port, printed when it differs from the device's `dstport`. */
  port?: number;
  /** Set when the entry lives in a bridge's table rather than the device's own (`self`). */
  master?: string;
  flags: string[];
  /** `permanent`, `static`, or absent for learned entries. */
  state?: string;
}

export interface FdbEntrySpec {
  mac: string;
  dev: string;
  dst?: string;
  vni?: number;
  port?: number;
  /** `self` (default: the device's own table, as for VXLAN) or `master` (the bridge's table). */
  target?: 'self' | 'master';
  /** Default `permanent`. */
  state?: 'permanent' | 'static' | 'dynamic';
}

/** Typed `bridge fdb` operations. Real: {@link ExecBridgeFdb}; in-memory: FakeBridgeFdb. */
export interface BridgeFdb {
  list(options?: { dev?: string }): Promise<FdbEntry[]>;
  /** Adds another entry for (mac, dev) — for VXLAN, one more remote for the all-zeros MAC. */
  append(entry: FdbEntrySpec): Promise<void>;
  replace(entry: FdbEntrySpec): Promise<void>;
  delete(entry: FdbEntrySpec): Promise<void>;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export const fdbArgs = {
  list: (o: { dev?: string } = {}): string[] => ['-j', 'fdb', 'show', ...(o.dev ? ['dev', o.dev] : [])],
  change(verb: 'append' | 'replace' | 'del', e: FdbEntrySpec): string[] {
    if (!MAC.test(e.mac)) throw new TypeError(`invalid MAC address ${JSON.stringify(e.mac)}`);
    const args = ['fdb', verb, e.mac.toLowerCase(), 'dev', e.dev];
    if (e.dst) args.push('dst', e.dst);
    if (e.vni !== undefined) args.push('vni', String(e.vni));
    if (e.port !== undefined) args.push('port', String(e.port));
    if (verb !== 'del') args.push(e.target ?? 'self', e.state ?? 'permanent');
    else if (e.target) args.push(e.target);
    return args;
  },
};

const fdbJson = z.object({
  mac: z.string(),
  ifname: z.string().optional(),
  dst: z.string().optional(),
  vlan: z.number().optional(),
  vni: z.number().optional(),
  port: z.number().optional(),
  master: z.string().optional(),
  flags: z.array(z.string()).default([]),
  state: z.string().optional(),
});

/** `bridge -j fdb show [dev D]`: entries omit `ifname` when filtered by dev, so `dev` fills it in. */
export function parseFdb(text: string, dev?: string, commandLine = 'bridge -j fdb show'): FdbEntry[] {
  return parseJsonArray(fdbJson, text, commandLine).map((f) => {
    const entry: FdbEntry = { mac: f.mac, dev: f.ifname ?? dev ?? '', flags: f.flags };
    if (f.dst !== undefined) entry.dst = f.dst;
    if (f.vlan !== undefined) entry.vlan = f.vlan;
    if (f.vni !== undefined) entry.vni = f.vni;
    if (f.port !== undefined) entry.port = f.port;
    if (f.master !== undefined) entry.master = f.master;
    if (f.state !== undefined && f.state !== '') entry.state = f.state;
    return entry;
  });
}

export class ExecBridgeFdb implements BridgeFdb {
  constructor(private readonly runner: CommandRunner) {}

  async list(options: { dev?: string } = {}): Promise<FdbEntry[]> {
    const args = fdbArgs.list(options);
    const { stdout } = await this.runner.run('bridge', args);
    return parseFdb(stdout, options.dev, formatCommandLine(['bridge', ...args]));
  }

  async append(entry: FdbEntrySpec): Promise<void> {
    await this.runner.run('bridge', fdbArgs.change('append', entry));
  }

  async replace(entry: FdbEntrySpec): Promise<void> {
    await this.runner.run('bridge', fdbArgs.change('replace', entry));
  }

  async delete(entry: FdbEntrySpec): Promise<void> {
    await this.runner.run('bridge', fdbArgs.change('del', entry));
  }
}
