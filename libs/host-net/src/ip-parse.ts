import { z } from 'zod';
import { definedFields } from './defined-fields';
import { OutputParseError } from './errors';
import type { Address, Family, Link, Neighbour, Route, Rule } from './ip-types';

/** Parsers for `ip -j` / `bridge -j` output into the narrow types of ip-types.ts. */

const linkJson = z.object({
  ifindex: z.number(),
  ifname: z.string(),
  flags: z.array(z.string()).default([]),
  mtu: z.number(),
  operstate: z.string().optional(),
  master: z.string().optional(),
  address: z.string().optional(),
  link_netnsid: z.number().optional(),
  linkinfo: z
    .object({
      info_kind: z.string().optional(),
      info_data: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
});

const vxlanData = z.object({
  id: z.number(),
  port: z.number(),
  local: z.string().optional(),
  link: z.string().optional(),
  learning: z.boolean().default(true),
});

const addrJson = z.object({
  ifname: z.string(),
  addr_info: z
    .array(
      z.object({
        family: z.enum(['inet', 'inet6']),
        local: z.string(),
        prefixlen: z.number(),
        scope: z.string().default('global'),
        tentative: z.boolean().optional(),
      }),
    )
    .default([]),
});

const routeJson = z.object({
  type: z.string().optional(),
  dst: z.string(),
  gateway: z.string().optional(),
  dev: z.string().optional(),
  table: z.string().optional(),
  protocol: z.string().optional(),
  scope: z.string().optional(),
  prefsrc: z.string().optional(),
  metric: z.number().optional(),
});

const ruleJson = z.object({
  priority: z.number(),
  src: z.string().default('all'),
  srclen: z.number().optional(),
  dst: z.string().optional(),
  dstlen: z.number().optional(),
  table: z.string().optional(),
  fwmark: z.string().optional(),
  fwmask: z.string().optional(),
  iif: z.string().optional(),
  oif: z.string().optional(),
  action: z.string().optional(),
  suppress_prefixlen: z.number().optional(),
  protocol: z.string().optional(),
});

const neighJson = z.object({
  dst: z.string(),
  dev: z.string().optional(),
  lladdr: z.string().optional(),
  state: z.array(z.string()).default([]),
});

function parseJsonArray<T extends z.ZodType>(schema: T, text: string, commandLine: string): z.output<T>[] {
  let data: unknown;
  try {
    data = text.trim() === '' ? [] : JSON.parse(text);
  } catch (err) {
    throw new OutputParseError(
      commandLine,
      `invalid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const result = z.array(schema).safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new OutputParseError(
      commandLine,
      issue ? `${issue.path.join('.')}: ${issue.message}` : result.error.message,
    );
  }
  return result.data;
}

export function parseLinks(text: string, commandLine = 'ip -j -d link show'): Link[] {
  return parseJsonArray(linkJson, text, commandLine).map((l) => {
    const link: Link = {
      index: l.ifindex,
      name: l.ifname,
      flags: l.flags,
      up: l.flags.includes('UP'),
      operState: l.operstate ?? 'UNKNOWN',
      mtu: l.mtu,
    };
    if (l.address !== undefined) link.mac = l.address;
    if (l.master !== undefined) link.master = l.master;
    if (l.link_netnsid !== undefined) link.linkNetnsId = l.link_netnsid;
    const kind = l.linkinfo?.info_kind;
    if (kind !== undefined) link.kind = kind;
    if (kind === 'vxlan') {
      const v = vxlanData.safeParse(l.linkinfo?.info_data ?? {});
      if (!v.success)
        throw new OutputParseError(commandLine, `vxlan info_data of ${l.ifname}: ${v.error.message}`);
      link.vxlan = { id: v.data.id, port: v.data.port, learning: v.data.learning };
      if (v.data.local !== undefined) link.vxlan.local = v.data.local;
      if (v.data.link !== undefined) link.vxlan.dev = v.data.link;
    }
    return link;
  });
}

export function parseAddresses(text: string, commandLine = 'ip -j addr show'): Address[] {
  return parseJsonArray(addrJson, text, commandLine).flatMap((l) =>
    l.addr_info.map((a) => ({
      dev: l.ifname,
      family: a.family,
      local: a.local,
      prefixLength: a.prefixlen,
      cidr: `${a.local}/${a.prefixlen}`,
      scope: a.scope,
      tentative: a.tentative ?? false,
    })),
  );
}

/**
 * `ip -j route show table T`: entries omit `table` when it is the one asked for (or main), so the
 * queried table fills it in; with `table all`, a missing table means `main`.
 */
export function parseRoutes(
  text: string,
  family: Family,
  table: string,
  commandLine = 'ip -j route show',
): Route[] {
  const fallback = table === 'all' ? 'main' : table;
  return parseJsonArray(routeJson, text, commandLine).map(({ table: t, type, ...rest }) =>
    definedFields<Route>({ family, table: t ?? fallback, type: type ?? 'unicast', ...rest }),
  );
}

export function parseRules(text: string, family: Family, commandLine = 'ip -j rule show'): Rule[] {
  const num = (hex: string | undefined) => (hex === undefined ? undefined : Number(hex));
  return parseJsonArray(ruleJson, text, commandLine).map(
    ({ priority, src, srclen, dst, dstlen, fwmark, fwmask, suppress_prefixlen, ...rest }) =>
      definedFields<Rule>({
        family,
        priority,
        from: src === 'all' || srclen === undefined ? src : `${src}/${srclen}`,
        to: dst === undefined || dstlen === undefined ? dst : `${dst}/${dstlen}`,
        fwmark: num(fwmark),
        fwmask: num(fwmask),
        suppressPrefixLength: suppress_prefixlen,
        ...rest, // table, iif, oif, action, protocol: as printed
      }),
  );
}

/** `ip -j neigh show [dev D]`: entries omit `dev` when filtered by it, so `dev` fills it in. */
export function parseNeighbours(text: string, dev?: string, commandLine = 'ip -j neigh show'): Neighbour[] {
  return parseJsonArray(neighJson, text, commandLine).map((n) => {
    const neigh: Neighbour = {
      family: n.dst.includes(':') ? 'inet6' : 'inet',
      dst: n.dst,
      dev: n.dev ?? dev ?? '',
      state: n.state,
    };
    if (n.lladdr !== undefined) neigh.lladdr = n.lladdr;
    return neigh;
  });
}

export { parseJsonArray };
