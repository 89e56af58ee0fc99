import { CommandError } from '../errors';
import type { IptablesBackend } from '../iptables';
import {
  BUILTIN_CHAINS,
  canonicalRule,
  ruleTarget,
  tokenizeRule,
  renderTokens,
  type IptablesFamily,
  type IptablesTable,
} from '../iptables-rules';

interface TableState {
  policies: Map<string, string>;
  user: string[];
  rules: Map<string, string[]>;
}

const TARGETS = new Set(
  'ACCEPT DROP RETURN REJECT LOG NFLOG MASQUERADE SNAT DNAT REDIRECT NETMAP MARK CONNMARK TPROXY TCPMSS NOTRACK CT NFQUEUE QUEUE TRACE CHECKSUM SET CLASSIFY DSCP TOS TTL HL AUDIT'.split(
    ' ',
  ),
);

/** A failure inside the interpreter; turned into a CommandError by the caller. */
class IptFailure {
  constructor(
    readonly exitCode: number,
    readonly message: string,
  ) {}
}

/**
 * In-memory {@link IptablesBackend}: tables with built-in and user chains, `-S` rendering,
 * transactional `iptables-restore --noflush` (declaring a user chain creates or flushes it; a
 * failing line aborts the whole table), and raw commands (-A -I -D -F -N -X -P -S -C) for tests
 * that simulate drift. Rules are stored in canonical form, as iptables prints the common cases.
 * Errors carry the messages and exit codes of iptables 1.8.
 */
export class FakeIptables implements IptablesBackend {
  private tables = new Map<string, TableState>();
  private readonly binary: string;

  constructor(readonly family: IptablesFamily = 'inet') {
    this.binary = family === 'inet6' ? 'ip6tables' : 'iptables';
    for (const table of Object.keys(BUILTIN_CHAINS))
      this.tables.set(table, freshTable(table as IptablesTable));
  }

  async listRules(table: string): Promise<string> {
    return this.command(['-t', table, '-S']);
  }

  async command(args: readonly string[]): Promise<string> {
    const argv = [this.binary, ...args];
    const rest = [...args];
    let table = 'filter';
    for (let i = 0; i < rest.length;) {
      if (rest[i] === '-w') {
        rest.splice(i, /^\d+$/.test(rest[i + 1] ?? '') ? 2 : 1);
      } else if (rest[i] === '-t') {
        table = rest[i + 1] ?? '';
        rest.splice(i, 2);
      } else i++;
    }
    const state = this.tables.get(table);
    if (!state) {
      throw new CommandError({
        command: argv,
        exitCode: 3,
        stderr: `${this.binary} v1.8.9 (nf_tables): table '${table}' does not exist\nPerhaps iptables or your kernel needs to be upgraded.`,
      });
    }
    try {
      return apply(state, table as IptablesTable, rest, this.family);
    } catch (err) {
      if (err instanceof IptFailure)
        throw new CommandError({ command: argv, exitCode: err.exitCode, stderr: err.message });
      throw err;
    }
  }

  async restore(payload: string): Promise<void> {
    const argv = [`${this.binary}-restore`, '-w', '5', '--noflush'];
    const fail = (exitCode: number, message: string): never => {
      throw new CommandError({ command: argv, exitCode, stderr: message });
    };
    let current: { name: string; state: TableState } | undefined;
    const lines = payload.split('\n');
    for (let n = 1; n <= lines.length; n++) {
      const line = (lines[n - 1] as string).trim();
      if (line === '' || line.startsWith('#')) continue;
      if (line.startsWith('*')) {
        const name = line.slice(1);
        const base = this.tables.get(name);
        if (!base) fail(1, `${this.binary}-restore: line ${n} failed: table '${name}' does not exist`);
        current = { name, state: cloneTable(base as TableState) };
        continue;
      }
      if (!current) return fail(1, `${this.binary}-restore: line ${n} failed: no table given`);
      if (line === 'COMMIT') {
        this.tables.set(current.name, current.state);
        current = undefined;
        continue;
      }
      try {
        if (line.startsWith(':')) {
          const [chain = '', policy = '-'] = line.slice(1).split(/\s+/);
          declareChain(current.state, current.name as IptablesTable, chain, policy);
        } else {
          apply(current.state, current.name as IptablesTable, tokenizeRule(line), this.family);
        }
      } catch (err) {
        if (!(err instanceof IptFailure)) throw err;
        fail(
          err.exitCode === 4 ? 4 : 1,
          `${this.binary}-restore: line ${n} failed: ${err.message.replace(/^iptables: /, '')}`,
        );
      }
    }
    if (current) fail(1, `${this.binary}-restore: COMMIT expected at line ${lines.length + 1}`);
  }
}

function freshTable(table: IptablesTable): TableState {
  const state: TableState = { policies: new Map(), user: [], rules: new Map() };
  for (const chain of BUILTIN_CHAINS[table]) {
    state.policies.set(chain, 'ACCEPT');
    state.rules.set(chain, []);
  }
  return state;
}

function cloneTable(s: TableState): TableState {
  return {
    policies: new Map(s.policies),
    user: [...s.user],
    rules: new Map([...s.rules].map(([k, v]) => [k, [...v]])),
  };
}

function declareChain(state: TableState, table: IptablesTable, chain: string, policy: string): void {
  if (BUILTIN_CHAINS[table].includes(chain)) {
    if (policy !== '-') state.policies.set(chain, policy);
    return;
  }
  if (!state.user.includes(chain)) state.user.push(chain);
  state.rules.set(chain, []);
}

const noChain = (): IptFailure => new IptFailure(1, 'iptables: No chain/target/match by that name.');

function chainRules(state: TableState, chain: string | undefined): string[] {
  const rules = chain === undefined ? undefined : state.rules.get(chain);
  if (!rules) throw noChain();
  return rules;
}

function checkTarget(state: TableState, spec: string[], family: IptablesFamily): string {
  const rule = canonicalRule(renderTokens(spec), family);
  const target = ruleTarget(rule);
  if (target && !TARGETS.has(target) && !state.user.includes(target)) {
    throw new IptFailure(2, `iptables v1.8.9 (nf_tables): Chain '${target}' does not exist`);
  }
  return rule;
}

/** Executes one iptables command (tokens after `-t`), returning stdout. */
function apply(state: TableState, table: IptablesTable, tokens: string[], family: IptablesFamily): string {
  const [op, chain, ...spec] = tokens;
  const builtins = BUILTIN_CHAINS[table];
  switch (op) {
    case '-S':
    case '--list-rules':
      return render(state, builtins, chain);
    case '-N':
    case '--new-chain':
      if (!chain) throw new IptFailure(2, 'iptables: chain name expected');
      if (state.rules.has(chain)) throw new IptFailure(1, 'iptables: Chain already exists.');
      state.user.push(chain);
      state.rules.set(chain, []);
      return '';
    case '-A':
    case '--append':
      chainRules(state, chain).push(checkTarget(state, spec, family));
      return '';
    case '-I':
    case '--insert': {
      const rules = chainRules(state, chain);
      const hasPos = /^\d+$/.test(spec[0] ?? '');
      const pos = hasPos ? Number(spec[0]) : 1;
      const rule = checkTarget(state, hasPos ? spec.slice(1) : spec, family);
      if (pos < 1 || pos > rules.length + 1) throw new IptFailure(1, 'iptables: Index of insertion too big.');
      rules.splice(pos - 1, 0, rule);
      return '';
    }
    case '-D':
    case '--delete': {
      const rules = chainRules(state, chain);
      if (spec.length === 1 && /^\d+$/.test(spec[0] as string)) {
        const i = Number(spec[0]) - 1;
        if (i < 0 || i >= rules.length) throw new IptFailure(1, 'iptables: Index of deletion too big.');
        rules.splice(i, 1);
        return '';
      }
      const i = rules.indexOf(canonicalRule(renderTokens(spec), family));
      if (i < 0) throw new IptFailure(1, 'iptables: Bad rule (does a matching rule exist in that chain?).');
      rules.splice(i, 1);
      return '';
    }
    case '-C':
    case '--check':
      if (!chainRules(state, chain).includes(canonicalRule(renderTokens(spec), family))) {
        throw new IptFailure(1, 'iptables: Bad rule (does a matching rule exist in that chain?).');
      }
      return '';
    case '-F':
    case '--flush':
      if (chain === undefined) for (const k of state.rules.keys()) state.rules.set(k, []);
      else chainRules(state, chain).length = 0;
      return '';
    case '-X':
    case '--delete-chain': {
      const victims = chain === undefined ? [...state.user] : [chain];
      for (const c of victims) {
        if (builtins.includes(c)) throw new IptFailure(2, `iptables: Can't delete built-in chain ${c}.`);
        if (!state.user.includes(c)) throw noChain();
        const referenced = [...state.rules].some(
          ([owner, rules]) => !victims.includes(owner) && rules.some((r) => ruleTarget(r) === c),
        );
        if ((state.rules.get(c)?.length ?? 0) > 0 || referenced) {
          throw new IptFailure(
            4,
            `iptables v1.8.9 (nf_tables): CHAIN_USER_DEL failed (Device or resource busy): chain ${c}`,
          );
        }
      }
      for (const c of victims) {
        state.user = state.user.filter((u) => u !== c);
        state.rules.delete(c);
      }
      return '';
    }
    case '-P':
    case '--policy':
      if (!chain || !builtins.includes(chain)) throw new IptFailure(1, 'iptables: Bad built-in chain name.');
      state.policies.set(chain, spec[0] ?? 'ACCEPT');
      return '';
    default:
      throw new IptFailure(2, `iptables v1.8.9 (nf_tables): unknown option "${op ?? ''}"`);
  }
}

function render(state: TableState, builtins: readonly string[], only?: string): string {
  const lines: string[] = [];
  if (only !== undefined && !state.rules.has(only)) throw noChain();
  const chains = only !== undefined ? [only] : [...builtins, ...state.user];
  for (const c of chains) {
    if (builtins.includes(c)) lines.push(`-P ${c} ${state.policies.get(c) ?? 'ACCEPT'}`);
  }
  for (const c of chains) if (!builtins.includes(c)) lines.push(`-N ${c}`);
  for (const c of chains) for (const r of state.rules.get(c) ?? []) lines.push(`-A ${c} ${r}`);
  return lines.join('\n') + '\n';
}
