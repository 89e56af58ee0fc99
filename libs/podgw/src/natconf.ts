import { existsSync, readFileSync } from 'node:fs';
import { errorMessage } from '@knet/runtime';
import { SettingsError } from './shell-env';

/**
 * pod-gateway's `nat.conf`: one client per line, `hostname octet proto:port[,proto:port…]`, e.g.
 *
 *     transmission 10 tcp:51413,udp:51413
 *     web 11 tcp:8080:80
 *
 * The client whose pod hostname matches gets the static overlay address `NET.octet` (instead of a
 * DHCP lease) and the listed ports are forwarded to it from the VPN interface. Our extension:
 * `proto:public:client` forwards a different public port (pod-gateway#68); `proto:port` keeps
 * the same port on both sides.
 */
export interface NatPort {
  protocol: 'tcp' | 'udp';
  /** Port on the VPN interface. */
  publicPort: number;
  /** Port on the client. */
  clientPort: number;
}

export interface NatEntry {
  hostname: string;
  /** Last octet of the client's overlay address. */
  octet: number;
  ports: NatPort[];
  /** `file:line`, for messages. */
  origin: string;
}

export interface NatConfLimits {
  /** VXLAN_GATEWAY_FIRST_DYNAMIC_IP: static octets must be below it (and above the gateway's 1). */
  firstDynamicIp: number;
}

/** A nat.conf line that was skipped, and why. */
export interface NatProblem {
  /** `<file>:<line>: <problem>`. */
  message: string;
  /** The line's first field: the pod it was meant for. */
  hostname: string;
}

/**
 * Parses nat.conf text. A bad line throws `SettingsError` with one line `<file>:<line>: <problem>`,
 * or, given `problems`, is recorded there and skipped: one pod's bad line then breaks that pod
 * only (see {@link natProblemFor}), not every client and the gateway.
 */
export function parseNatConf(
  text: string,
  source: string,
  limits: NatConfLimits,
  problems?: NatProblem[],
): NatEntry[] {
  const entries: NatEntry[] = [];
  const byHost = new Map<string, NatEntry>();
  const byOctet = new Map<number, NatEntry>();
  const publicPorts = new Map<string, NatEntry>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const origin = `${source}:${i + 1}`;
    const line = (lines[i] as string).replace(/#.*$/, '').trim();
    if (line === '') continue;
    try {
      const entry = parseLine(line, origin, limits, byHost, byOctet, publicPorts);
      byHost.set(entry.hostname, entry);
      byOctet.set(entry.octet, entry);
      for (const p of entry.ports) publicPorts.set(`${p.protocol}:${p.publicPort}`, entry);
      entries.push(entry);
    } catch (e) {
      if (!(e instanceof SettingsError) || !problems) throw e;
      problems.push({ message: e.message, hostname: (line.split(/\s+/)[0] as string).toLowerCase() });
    }
  }
  return entries;
}

/** One non-empty line; throws SettingsError. */
function parseLine(
  line: string,
  origin: string,
  limits: NatConfLimits,
  byHost: ReadonlyMap<string, NatEntry>,
  byOctet: ReadonlyMap<number, NatEntry>,
  publicPorts: ReadonlyMap<string, NatEntry>,
): NatEntry {
  {
    const fail = (msg: string): never => {
      throw new SettingsError(`${origin}: ${msg}`);
    };
    const fields = line.split(/\s+/);
    if (fields.length < 2 || fields.length > 3) {
      fail(`expected "hostname octet [proto:port,…]", got ${JSON.stringify(line)}`);
    }
    const [hostname, octetText, portsText] = fields as [string, string, string | undefined];
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(hostname)) {
      fail(`"${hostname}" is not a pod hostname (lower-case letters, digits and dashes)`);
    }
    if (!/^\d{1,3}$/.test(octetText) || Number(octetText) < 2 || Number(octetText) >= limits.firstDynamicIp) {
      fail(
        `static address "${octetText}" must be the last octet, from 2 to ${limits.firstDynamicIp - 1} (below VXLAN_GATEWAY_FIRST_DYNAMIC_IP=${limits.firstDynamicIp})`,
      );
    }
    const octet = Number(octetText);
    const ports: NatPort[] = [];
    for (const spec of portsText ? portsText.split(',').filter(Boolean) : []) {
      const m = /^(tcp|udp):(\d{1,5})(?::(\d{1,5}))?$/i.exec(spec);
      const valid = (p: string | undefined) => p === undefined || (Number(p) >= 1 && Number(p) <= 65_535);
      if (!m || !valid(m[2]) || !valid(m[3])) {
        return fail(`"${spec}" is not a port forward like tcp:8080 or tcp:8080:80 (public:client)`);
      }
      const port: NatPort = {
        protocol: (m[1] as string).toLowerCase() as 'tcp' | 'udp',
        publicPort: Number(m[2]),
        clientPort: Number(m[3] ?? m[2]),
      };
      const key = `${port.protocol}:${port.publicPort}`;
      const taken = publicPorts.get(key);
      if (taken) fail(`${key} is already forwarded to ${taken.hostname} (${taken.origin})`);
      ports.push(port);
    }
    const entry: NatEntry = { hostname, octet, ports, origin };
    const sameHost = byHost.get(hostname);
    if (sameHost) fail(`hostname ${hostname} is already listed at ${sameHost.origin}`);
    const sameOctet = byOctet.get(octet);
    if (sameOctet) fail(`address .${octet} is already given to ${sameOctet.hostname} (${sameOctet.origin})`);
    return entry;
  }
}

/**
 * The skipped line meant for this pod, if any: its first field names the pod as an entry would
 * match it (exactly, after its controller, or by pod-gateway's first-dash rule). That pod must not
 * start without its static address and port forwards.
 */
export function natProblemFor(problems: readonly NatProblem[], hostname: string): NatProblem | undefined {
  const name = hostname.toLowerCase();
  return problems.find((p) => name === p.hostname || name.startsWith(`${p.hostname}-`));
}

/** Reads nat.conf; a missing file means no static clients. */
export function loadNatConf(path: string, limits: NatConfLimits, problems?: NatProblem[]): NatEntry[] {
  if (!existsSync(path)) return [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SettingsError(
      `nat.conf ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`,
    );
  }
  return parseNatConf(text, path, limits, problems);
}

/**
 * The entry for a pod hostname. pod-gateway cut the hostname at its first dash and looked the
 * rest up exactly, so `my-app-5d8f…` became `my` and every pod whose name starts with `my-` got
 * `my`'s address (PR #51). Here an entry matches the hostname exactly, or the hostname of a pod its
 * controller named after it: `<entry>-<ordinal>` (StatefulSet), `<entry>-<5 chars>` (DaemonSet,
 * Job, bare ReplicaSet) or `<entry>-<hash>-<5 chars>` (Deployment); the longest matching entry wins.
 * When none does, pod-gateway's own rule still applies, so files written for it keep working
 * (`media` for `media-qbittorrent-6d4cf56db6-x2x9z`), and `warn` is told, loudly: the entry also
 * matches every other pod whose name starts with `media-`, and should be named after the workload.
 */
export function matchNatEntry(
  entries: readonly NatEntry[],
  hostname: string,
  warn?: (message: string) => void,
): NatEntry | undefined {
  const name = hostname.toLowerCase();
  const exact = entries.find((e) => e.hostname === name);
  if (exact) return exact;
  const generated = /^(\d+|[a-z0-9]{5}|[a-z0-9]{5,10}-[a-z0-9]{5})$/;
  const named = entries
    .filter((e) => name.startsWith(`${e.hostname}-`) && generated.test(name.slice(e.hostname.length + 1)))
    .sort((a, b) => b.hostname.length - a.hostname.length)[0];
  if (named) {
    warn?.(
      `nat.conf entry "${named.hostname}" (${named.origin}) matches pod ${name} as one of its controller's pods: ` +
        `every replica gets .${named.octet}, so with more than one they share the address and its port forwards ` +
        `(keep one replica, or list each pod by name, e.g. "${named.hostname}-0" for a StatefulSet)`,
    );
    return named;
  }
  const dash = name.indexOf('-');
  const cut = dash > 0 ? entries.find((e) => e.hostname === name.slice(0, dash)) : undefined;
  if (cut) {
    warn?.(
      `nat.conf entry "${cut.hostname}" (${cut.origin}) matches pod ${name} only by pod-gateway's first-dash rule, ` +
        `so every pod named "${cut.hostname}-…" gets .${cut.octet} and its port forwards: ` +
        `name the entry after the workload (e.g. "${workloadName(name)}") to give them to this one alone`,
    );
  }
  return cut;
}

/** The workload part of a generated pod name (`media-qbittorrent-6d4cf56db6-x2x9z` → `media-qbittorrent`). */
function workloadName(podName: string): string {
  return podName.replace(/-([a-z0-9]{5,10}-)?[a-z0-9]{5}$/, '').replace(/-\d+$/, '');
}
