/**
 * Pure parts of the iptables reconciler: rule tokenizing and light canonicalisation (the way
 * `iptables -S` prints a rule), parsing `-S` output, computing drift, and rendering
 * `iptables-restore --noflush` payloads. No I/O here; everything is table-tested.
 */

export type IptablesFamily = 'inet' | 'inet6';
export type IptablesTable = 'filter' | 'nat' | 'mangle' | 'raw' | 'security';

export const BUILTIN_CHAINS: Readonly<Record<IptablesTable, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

/**
 * Targets a rule in a built-in chain may have besides an owned chain. Such a rule is owned by its
 * text: a live rule in that chain equal to it (or to one the set declared before, see
 * `DiffOptions.formerJumps`) is the set's, any other rule with that target is foreign.
 */
export const STANDARD_TARGETS: readonly string[] = ['ACCEPT', 'DROP', 'RETURN'];

/**
 * A rule the set puts into a built-in chain: a jump into one of the owned chains, or a rule ending
 * in a standard target (`-j ACCEPT`, `-j DROP`, `-j RETURN`).
 */
export interface IptablesJump {
  /** Must equal the rule set's table when given. */
  table?: IptablesTable;
  /** A built-in chain of the table, e.g. `FORWARD`. */
  fromChain: string;
  /**
   * Rule spec without `-A CHAIN`, ending in `-j OWNED` or `-g OWNED` (e.g. `-i eth0 -j KNT-FWD`), or
   * in `-j ACCEPT|DROP|RETURN` (e.g. `-s 10.2.1.0/24 -j ACCEPT`).
   */
  rule: string;
  /** `prepend`: at the top of fromChain, in the given order; `append`: at the bottom. */
  position: 'prepend' | 'append';
}

/** The desired state of one table: owned chains with their rules, and the jumps into them. */
export interface IptablesRuleSet {
  table: IptablesTable;
  /** Owned chains: name → rule specs (without `-A NAME`), in order. */
  chains: Readonly<Record<string, readonly string[]>>;
  jumps?: readonly IptablesJump[];
}

/** One table as read back from `iptables -t T -S`. */
export interface LiveTable {
  table: string;
  /** Built-in chain → policy (`ACCEPT`, `DROP`). */
  policies: Map<string, string>;
  /** User-defined chains, in the order printed. */
  userChains: string[];
  /** Chain (built-in or user) → rule specs as printed, without `-A CHAIN`. */
  rules: Map<string, string[]>;
}

export type Drift =
  | { kind: 'missing-chain'; table: string; chain: string }
  | { kind: 'chain-rules'; table: string; chain: string; want: string[]; have: string[] }
  | { kind: 'jumps'; table: string; chain: string; want: string[]; have: string[] }
  | { kind: 'stale-chain'; table: string; chain: string };

/** Maps a rule to the form used for comparison. `table`/`chain` let a reconciler use learned forms. */
export type RuleCanonicalizer = (table: string, chain: string, rule: string) => string;

export class IptablesRuleSetError extends Error {
  override readonly name = 'IptablesRuleSetError';
}

const CHAIN_NAME = /^[A-Za-z0-9_.-]{1,28}$/;

/** Throws {@link IptablesRuleSetError} (one line) unless the rule set is well formed. */
export function validateRuleSet(set: IptablesRuleSet): void {
  const builtins = BUILTIN_CHAINS[set.table];
  if (!builtins) throw new IptablesRuleSetError(`unknown iptables table ${JSON.stringify(set.table)}`);
  const owned = new Set(Object.keys(set.chains));
  for (const [chain, rules] of Object.entries(set.chains)) {
    if (!CHAIN_NAME.test(chain)) {
      throw new IptablesRuleSetError(`invalid chain name ${JSON.stringify(chain)}: 1-28 of [A-Za-z0-9_.-]`);
    }
    if (isBuiltinChainName(chain)) {
      throw new IptablesRuleSetError(`chain ${chain} is built-in; a rule set only owns user chains`);
    }
    for (const rule of rules) checkRuleText(rule, `${set.table}/${chain}`);
  }
  for (const jump of set.jumps ?? []) {
    if (jump.table !== undefined && jump.table !== set.table) {
      throw new IptablesRuleSetError(
        `jump from ${jump.fromChain} is for table ${jump.table}, not ${set.table}`,
      );
    }
    if (!builtins.includes(jump.fromChain)) {
      throw new IptablesRuleSetError(
        `jump from ${jump.fromChain}: not a built-in chain of table ${set.table} (${builtins.join(', ')})`,
      );
    }
    checkRuleText(jump.rule, `${set.table}/${jump.fromChain}`);
    const target = ruleTarget(jump.rule);
    if (!target || !(owned.has(target) || STANDARD_TARGETS.includes(target))) {
      throw new IptablesRuleSetError(
        `jump ${JSON.stringify(jump.rule)} in ${jump.fromChain} must target one of the owned chains (${[...owned].join(', ')}) or ${STANDARD_TARGETS.join(', ')}`,
      );
    }
  }
}

function checkRuleText(rule: string, where: string): void {
  if (/[\r\n]/.test(rule)) throw new IptablesRuleSetError(`rule in ${where} contains a newline`);
  let tokens: string[];
  try {
    tokens = tokenizeRule(rule);
  } catch (err) {
    throw new IptablesRuleSetError(`rule in ${where}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (tokens.length === 0) throw new IptablesRuleSetError(`empty rule in ${where}`);
  if (['-A', '-I', '-D', '-N', '-X', '-F', '-P', '-t'].includes(tokens[0] ?? '')) {
    throw new IptablesRuleSetError(`rule in ${where} must be a spec without ${tokens[0]}: ${rule}`);
  }
}

const ALL_BUILTINS = new Set(Object.values(BUILTIN_CHAINS).flat());

export function isBuiltinChainName(chain: string): boolean {
  return ALL_BUILTINS.has(chain);
}

/** Splits a rule as iptables-restore does: whitespace, double quotes, backslash escapes. */
export function tokenizeRule(rule: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < rule.length; i++) {
    const ch = rule[i] as string;
    if (quoted) {
      if (ch === '\\' && i + 1 < rule.length && /["'\\]/.test(rule[i + 1] as string)) cur += rule[++i];
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') {
      quoted = true;
      inToken = true;
    } else if (/\s/.test(ch)) {
      if (inToken) out.push(cur);
      cur = '';
      inToken = false;
    } else if (ch === '\\' && i + 1 < rule.length) {
      cur += rule[++i];
      inToken = true;
    } else {
      cur += ch;
      inToken = true;
    }
  }
  if (quoted) throw new Error(`unterminated quote in ${JSON.stringify(rule)}`);
  if (inToken) out.push(cur);
  return out;
}

/** Renders one token so that iptables-restore reads it back unchanged. */
export function quoteToken(token: string): string {
  if (token !== '' && /^[^\s"'\\]+$/.test(token)) return token;
  return `"${token.replace(/["'\\]/g, (c) => `\\${c}`)}"`;
}

/** Like iptables' xtables_save_string: unquoted only when made of [A-Za-z0-9_-]. */
function saveString(value: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(value)) return value;
  return `"${value.replace(/["'\\]/g, (c) => `\\${c}`)}"`;
}

export function renderTokens(tokens: readonly string[]): string {
  return tokens.map((t, i) => (tokens[i - 1] === '--comment' ? saveString(t) : quoteToken(t))).join(' ');
}

const LONG_TO_SHORT: Record<string, string> = {
  '--source': '-s',
  '--src': '-s',
  '--destination': '-d',
  '--dst': '-d',
  '--in-interface': '-i',
  '--out-interface': '-o',
  '--protocol': '-p',
  '--fragment': '-f',
  '--jump': '-j',
  '--goto': '-g',
  '--match': '-m',
  '--destination-port': '--dport',
  '--source-port': '--sport',
};
const BASIC_ORDER = ['-s', '-d', '-i', '-o', '-p', '-f'];
const PORT_OPTIONS = new Set(['--dport', '--sport', '--tcp-flags', '--syn', '--tcp-option']);

/**
 * The rule as `iptables -S` would print it, for the common cases: long options shortened, basic
 * matches (-s -d -i -o -p -f) first in iptables' order, host addresses with /32 (/128), IPv4
 * networks masked, the implicit `-m tcp`/`-m udp` made explicit, REJECT's default `--reject-with`,
 * comments quoted as iptables does.
 * Anything else is compared verbatim; the reconciler learns the kernel's form after applying.
 */
export function canonicalRule(rule: string, family: IptablesFamily = 'inet'): string {
  const tokens = tokenizeRule(rule).map((t) => LONG_TO_SHORT[t] ?? t);
  const basic = new Map<string, string[]>();
  const rest: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const negated = tokens[i] === '!' && BASIC_ORDER.includes(tokens[i + 1] ?? '');
    const opt = negated ? (tokens[i + 1] as string) : (tokens[i] as string);
    if (!BASIC_ORDER.includes(opt)) {
      rest.push(tokens[i] as string);
      continue;
    }
    const start = negated ? i + 1 : i;
    const part = negated ? ['!', opt] : [opt];
    if (opt === '-f') {
      i = start;
    } else {
      let value = tokens[start + 1] ?? '';
      if (opt === '-s' || opt === '-d') value = canonicalAddress(value);
      if (opt === '-p') value = value.toLowerCase();
      part.push(value);
      i = start + 1;
    }
    basic.set(opt, part);
  }
  const out: string[] = [];
  for (const opt of BASIC_ORDER) out.push(...(basic.get(opt) ?? []));
  const proto = basic.get('-p')?.at(-1);
  if (
    proto &&
    ['tcp', 'udp', 'sctp', 'udplite'].includes(proto) &&
    rest.some((t) => PORT_OPTIONS.has(t)) &&
    !rest.some((t, i) => t === '-m' && rest[i + 1] === proto)
  ) {
    out.push('-m', proto);
  }
  out.push(...rest);
  // REJECT prints its default reply type.
  const j = out.indexOf('-j');
  if (out[j + 1] === 'REJECT' && j === out.length - 2) {
    out.push('--reject-with', family === 'inet6' ? 'icmp6-port-unreachable' : 'icmp-port-unreachable');
  }
  return renderTokens(out);
}

function canonicalAddress(value: string): string {
  if (value.includes(':')) return value.includes('/') ? value.toLowerCase() : `${value.toLowerCase()}/128`;
  const [addr, lenText] = value.split('/');
  const octets = (addr ?? '').split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return value;
  const len = lenText === undefined ? 32 : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > 32) return value;
  const n = octets.reduce((acc, o) => acc * 256 + o, 0);
  const mask = len === 0 ? 0 : Number((0xffffffffn << BigInt(32 - len)) & 0xffffffffn);
  const masked = Number(BigInt(n) & BigInt(mask));
  const dotted = [24, 16, 8, 0].map((s) => (masked >>> s) & 255).join('.');
  return `${dotted}/${len}`;
}

/** The chain a rule jumps or goes to (`-j X` / `-g X`), if any. */
export function ruleTarget(rule: string): string | undefined {
  const tokens = tokenizeRule(rule);
  for (let i = 0; i < tokens.length - 1; i++) {
    const t = tokens[i] as string;
    if (t === '-j' || t === '-g' || t === '--jump' || t === '--goto') return tokens[i + 1];
  }
  return undefined;
}

/** Parses `iptables [-t T] -S` output (policies, `-N`, `-A`). */
export function parseIptablesS(text: string, table: string): LiveTable {
  const live: LiveTable = { table, policies: new Map(), userChains: [], rules: new Map() };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(-P|-N|-A)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) throw new Error(`unexpected line in iptables -S output: ${line}`);
    const [, op, chain, rest] = m as unknown as [string, string, string, string | undefined];
    if (op === '-P') {
      live.policies.set(chain, rest ?? '');
      if (!live.rules.has(chain)) live.rules.set(chain, []);
    } else if (op === '-N') {
      live.userChains.push(chain);
      if (!live.rules.has(chain)) live.rules.set(chain, []);
    } else {
      const list = live.rules.get(chain) ?? [];
      list.push(rest ?? '');
      live.rules.set(chain, list);
    }
  }
  return live;
}

export const defaultCanonicalizer: RuleCanonicalizer = (_table, _chain, rule) => canonicalRule(rule);

export interface DiffOptions {
  /** Default inet; matters for defaults iptables prints (e.g. REJECT's reply type). */
  family?: IptablesFamily;
  /** Live user chains with this prefix that are not desired are owned too (stale, to delete). */
  ownedPrefix?: string;
  canonical?: RuleCanonicalizer;
  /**
   * Jumps of an earlier desired state of the table: those with a standard target are still owned
   * (stale, to delete) when live, though no longer desired.
   */
  formerJumps?: readonly IptablesJump[];
}

/**
 * The canonical forms of the standard-target rules (ACCEPT, DROP, RETURN) the set owns in a
 * built-in chain: its desired ones and `former` ones.
 */
function ownedStandardRules(
  desired: IptablesRuleSet,
  chain: string,
  canon: RuleCanonicalizer,
  former: readonly IptablesJump[] = [],
): Set<string> {
  const out = new Set<string>();
  for (const j of [...(desired.jumps ?? []), ...former]) {
    if (j.fromChain !== chain || !STANDARD_TARGETS.includes(ruleTarget(j.rule) ?? '')) continue;
    out.add(canon(desired.table, chain, j.rule));
  }
  return out;
}

/** Owned chains of a table: the desired ones plus live ones matching the owned prefix. */
export function ownedChains(desired: IptablesRuleSet, live: LiveTable, ownedPrefix?: string): Set<string> {
  const owned = new Set(Object.keys(desired.chains));
  if (ownedPrefix) for (const c of live.userChains) if (c.startsWith(ownedPrefix)) owned.add(c);
  return owned;
}

/** What differs between the desired rule set and the live table; empty when in sync. */
export function diffRuleSet(desired: IptablesRuleSet, live: LiveTable, options: DiffOptions = {}): Drift[] {
  const family = options.family ?? 'inet';
  const canon: RuleCanonicalizer =
    options.canonical ?? ((_table, _chain, rule) => canonicalRule(rule, family));
  const live1 = (rule: string): string => canonicalRule(rule, family);
  const table = desired.table;
  const drift: Drift[] = [];
  const liveUser = new Set(live.userChains);
  for (const [chain, rules] of Object.entries(desired.chains)) {
    if (!liveUser.has(chain)) {
      drift.push({ kind: 'missing-chain', table, chain });
      continue;
    }
    const want = rules.map((r) => canon(table, chain, r));
    const have = (live.rules.get(chain) ?? []).map(live1);
    if (!sameList(want, have)) drift.push({ kind: 'chain-rules', table, chain, want, have });
  }
  const owned = ownedChains(desired, live, options.ownedPrefix);
  for (const chain of live.userChains) {
    if (owned.has(chain) && !(chain in desired.chains)) drift.push({ kind: 'stale-chain', table, chain });
  }
  for (const chain of BUILTIN_CHAINS[table]) {
    const jumps = (desired.jumps ?? []).filter((j) => j.fromChain === chain);
    const rules = (live.rules.get(chain) ?? []).map(live1);
    const standard = ownedStandardRules(desired, chain, canon, options.formerJumps);
    const ours = rules.filter((r) => owned.has(ruleTarget(r) ?? '') || standard.has(r));
    if (jumps.length === 0 && ours.length === 0) continue;
    const pre = jumps.filter((j) => j.position === 'prepend').map((j) => canon(table, chain, j.rule));
    const app = jumps.filter((j) => j.position === 'append').map((j) => canon(table, chain, j.rule));
    const ok =
      ours.length === pre.length + app.length &&
      pre.every((r, i) => rules[i] === r) &&
      app.every((r, i) => rules[rules.length - app.length + i] === r);
    if (!ok) drift.push({ kind: 'jumps', table, chain, want: [...pre, ...app], have: ours });
  }
  return drift;
}

/**
 * The `iptables-restore --noflush` payload that repairs `drift` (from {@link diffRuleSet}) in one
 * atomic table transaction: declares (creates or flushes) drifted owned chains and refills them,
 * deletes every jump into owned chains from drifted built-in chains and re-adds the desired ones,
 * flushes and deletes stale owned chains. Empty string when there is nothing to do.
 */
export function renderRepairPayload(
  desired: IptablesRuleSet,
  live: LiveTable,
  drift: readonly Drift[],
): string {
  const mine = drift.filter((d) => d.table === desired.table);
  if (mine.length === 0) return '';
  const refill = mine
    .filter((d) => d.kind === 'missing-chain' || d.kind === 'chain-rules')
    .map((d) => d.chain);
  const stale = mine.filter((d) => d.kind === 'stale-chain').map((d) => d.chain);
  const jumpChains = mine.filter((d) => d.kind === 'jumps').map((d) => d.chain);
  const owned = new Set([...Object.keys(desired.chains), ...stale]);
  const lines = [`*${desired.table}`];
  for (const chain of [...refill, ...stale]) lines.push(`:${chain} - [0:0]`);
  for (const chain of jumpChains) {
    // Standard-target rules are ours when the drift listed them as ours (`have`).
    const have = new Set(mine.flatMap((d) => (d.kind === 'jumps' && d.chain === chain ? d.have : [])));
    for (const rule of live.rules.get(chain) ?? []) {
      const target = ruleTarget(rule) ?? '';
      const standard = STANDARD_TARGETS.includes(target) && have.has(canonicalRule(rule));
      if (owned.has(target) || standard) lines.push(`-D ${chain} ${rule}`);
    }
  }
  for (const chain of refill) {
    for (const rule of desired.chains[chain] ?? [])
      lines.push(`-A ${chain} ${renderTokens(tokenizeRule(rule))}`);
  }
  for (const chain of jumpChains) {
    const jumps = (desired.jumps ?? []).filter((j) => j.fromChain === chain);
    const pre = jumps.filter((j) => j.position === 'prepend');
    for (const j of [...pre].reverse()) lines.push(`-I ${chain} 1 ${renderTokens(tokenizeRule(j.rule))}`);
    for (const j of jumps.filter((x) => x.position === 'append')) {
      lines.push(`-A ${chain} ${renderTokens(tokenizeRule(j.rule))}`);
    }
  }
  for (const chain of stale) lines.push(`-X ${chain}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

/**
 * The payload that removes everything the rule set owns from the live table: jumps into owned chains
 * and its standard-target rules (desired or former) from built-in chains, then the owned chains
 * themselves. Empty string when nothing is left.
 */
export function renderCleanupPayload(
  desired: IptablesRuleSet,
  live: LiveTable,
  ownedPrefix?: string,
  options: Pick<DiffOptions, 'canonical' | 'formerJumps'> = {},
): string {
  const canon = options.canonical ?? defaultCanonicalizer;
  const owned = ownedChains(desired, live, ownedPrefix);
  const present = live.userChains.filter((c) => owned.has(c));
  const lines = [`*${desired.table}`];
  for (const chain of BUILTIN_CHAINS[desired.table]) {
    const standard = ownedStandardRules(desired, chain, canon, options.formerJumps);
    for (const rule of live.rules.get(chain) ?? []) {
      if (owned.has(ruleTarget(rule) ?? '') || standard.has(canonicalRule(rule)))
        lines.push(`-D ${chain} ${rule}`);
    }
  }
  for (const chain of present) lines.push(`-F ${chain}`);
  for (const chain of present) lines.push(`-X ${chain}`);
  if (lines.length === 1) return '';
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

/**
 * The lines `iptables -t T -S` prints for the owned part of a table once the rule set is applied
 * and nothing else is there (policies excluded): `-N` per chain, jumps, then the chains' rules.
 */
export function expectedIptablesS(desired: IptablesRuleSet, family: IptablesFamily = 'inet'): string[] {
  const lines: string[] = [];
  for (const chain of Object.keys(desired.chains)) lines.push(`-N ${chain}`);
  for (const chain of BUILTIN_CHAINS[desired.table]) {
    const jumps = (desired.jumps ?? []).filter((j) => j.fromChain === chain);
    for (const j of [
      ...jumps.filter((x) => x.position === 'prepend'),
      ...jumps.filter((x) => x.position === 'append'),
    ]) {
      lines.push(`-A ${chain} ${canonicalRule(j.rule, family)}`);
    }
  }
  for (const [chain, rules] of Object.entries(desired.chains)) {
    for (const rule of rules) lines.push(`-A ${chain} ${canonicalRule(rule, family)}`);
  }
  return lines;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
