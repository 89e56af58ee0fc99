import {
  canonicalRule,
  diffRuleSet,
  type Drift,
  type IptablesFamily,
  type IptablesRuleSet,
  type LiveTable,
  type DiffOptions,
  parseIptablesS,
  renderCleanupPayload,
  renderRepairPayload,
  ruleTarget,
  BUILTIN_CHAINS,
  STANDARD_TARGETS,
  validateRuleSet,
  type IptablesJump,
} from './iptables-rules';
import { describeDrift } from './drift';
import type { CommandRunner, Logger } from './runner';

/** The two operations the reconciler needs. Real: {@link ExecIptables}; in-memory: FakeIptables. */
export interface IptablesBackend {
  readonly family: IptablesFamily;
  /** `iptables -w N -t TABLE -S` output. */
  listRules(table: string): Promise<string>;
  /** `iptables-restore -w N --noflush` with `payload` on stdin (one transaction per table). */
  restore(payload: string): Promise<void>;
  /** A raw `iptables -w N ARGS...` command (for one-off rules, inspection and tests). */
  command(args: readonly string[]): Promise<string>;
}

export interface ExecIptablesOptions {
  /** `inet` → iptables (default), `inet6` → ip6tables. */
  family?: IptablesFamily;
  /** Seconds to wait for the xtables lock (`-w`); default 5. */
  lockWaitSeconds?: number;
}

export class ExecIptables implements IptablesBackend {
  readonly family: IptablesFamily;
  private readonly binary: string;
  private readonly wait: string;

  constructor(
    private readonly runner: CommandRunner,
    options: ExecIptablesOptions = {},
  ) {
    this.family = options.family ?? 'inet';
    this.binary = this.family === 'inet6' ? 'ip6tables' : 'iptables';
    this.wait = String(options.lockWaitSeconds ?? 5);
  }

  async listRules(table: string): Promise<string> {
    return (await this.runner.run(this.binary, ['-w', this.wait, '-t', table, '-S'])).stdout;
  }

  async restore(payload: string): Promise<void> {
    await this.runner.run(`${this.binary}-restore`, ['-w', this.wait, '--noflush'], { input: payload });
  }

  async command(args: readonly string[]): Promise<string> {
    return (await this.runner.run(this.binary, ['-w', this.wait, ...args])).stdout;
  }
}

export interface ReconcileResult {
  /** Whether a payload was applied. */
  changed: boolean;
  /** Drift found before applying. */
  drift: Drift[];
  /** Drift left after applying (empty unless iptables rewrote a rule in a way not learnable). */
  remaining: Drift[];
}

export interface IptablesReconcilerOptions {
  logger?: Logger;
  /**
   * Live user chains with this prefix that are not desired are treated as owned and stale: they
   * are removed by the next reconcile (use a prefix unique to the owner, e.g. `KNET-GW-`).
   */
  ownedPrefix?: string;
}

/**
 * Keeps a set of owned chains (and the jumps into them) equal to the desired state. Only owned
 * chains are ever created, flushed or deleted; built-in chains only get the declared jumps added or
 * removed, and foreign rules are never touched. A declared rule with a standard target (ACCEPT,
 * DROP, RETURN) is recognised by its text: when a new desired state drops it, the reconciler
 * remembers it until the next reconcile of its table has removed it.
 */
export class IptablesReconciler {
  private desired: IptablesRuleSet[];
  /** `${table}\0${chain}\0${canonical desired}` → canonical form the kernel printed after applying. */
  private readonly learned = new Map<string, string>();
  /** Table → standard-target jumps of replaced desired states, still to remove when live. */
  private readonly former = new Map<string, IptablesJump[]>();

  constructor(
    private readonly backend: IptablesBackend,
    desired: IptablesRuleSet | readonly IptablesRuleSet[],
    private readonly options: IptablesReconcilerOptions = {},
  ) {
    this.desired = [];
    this.setDesired(desired);
  }

  /** Replaces the desired state (validated); takes effect at the next {@link reconcile}. */
  setDesired(desired: IptablesRuleSet | readonly IptablesRuleSet[]): void {
    const sets = Array.isArray(desired) ? [...desired] : [desired as IptablesRuleSet];
    const tables = new Set<string>();
    for (const set of sets) {
      validateRuleSet(set);
      if (tables.has(set.table)) throw new Error(`iptables rule set: table ${set.table} given twice`);
      tables.add(set.table);
    }
    for (const old of this.desired) {
      const standard = (old.jumps ?? []).filter((j) => STANDARD_TARGETS.includes(ruleTarget(j.rule) ?? ''));
      if (standard.length > 0)
        this.former.set(old.table, [...(this.former.get(old.table) ?? []), ...standard]);
    }
    this.desired = sets;
  }

  private readonly canonical = (table: string, chain: string, rule: string): string => {
    const c = canonicalRule(rule, this.backend.family);
    return this.learned.get(`${table}\0${chain}\0${c}`) ?? c;
  };

  /** Replaces the desired state and applies it: {@link setDesired}, then {@link reconcile}. */
  async set(desired: IptablesRuleSet | readonly IptablesRuleSet[]): Promise<ReconcileResult> {
    this.setDesired(desired);
    return this.reconcile();
  }

  /** Reads the live tables and returns the drift, without changing anything. */
  async drift(): Promise<Drift[]> {
    const out: Drift[] = [];
    for (const set of this.desired) {
      const live = await this.read(set.table);
      out.push(...diffRuleSet(set, live, this.diffOptions(set.table)));
    }
    return out;
  }

  /** Applies the desired state where it drifted (idempotent: no drift → no write). */
  async reconcile(): Promise<ReconcileResult> {
    const result: ReconcileResult = { changed: false, drift: [], remaining: [] };
    for (const set of this.desired) {
      const live = await this.read(set.table);
      const drift = diffRuleSet(set, live, this.diffOptions(set.table));
      result.drift.push(...drift);
      if (drift.length === 0) {
        this.former.delete(set.table);
        continue;
      }
      this.options.logger?.debug(
        { family: this.backend.family, table: set.table, drift: drift.map(describeDrift) },
        'iptables: drift, applying',
      );
      await this.backend.restore(renderRepairPayload(set, live, drift));
      result.changed = true;
      const after = await this.read(set.table);
      this.learn(set, after);
      const remaining = diffRuleSet(set, after, this.diffOptions(set.table));
      if (remaining.length === 0) this.former.delete(set.table);
      result.remaining.push(...remaining);
    }
    return result;
  }

  /** Removes the jumps into owned chains, then the owned chains, from every desired table. */
  async cleanup(): Promise<void> {
    for (const set of this.desired) {
      const live = await this.read(set.table);
      const payload = renderCleanupPayload(set, live, this.options.ownedPrefix, this.diffOptions(set.table));
      if (payload === '') continue;
      this.options.logger?.debug({ family: this.backend.family, table: set.table }, 'iptables: cleanup');
      await this.backend.restore(payload);
      this.former.delete(set.table);
    }
  }

  private diffOptions(table: string): DiffOptions {
    const options: DiffOptions = { canonical: this.canonical, family: this.backend.family };
    if (this.options.ownedPrefix) options.ownedPrefix = this.options.ownedPrefix;
    const former = this.former.get(table);
    if (former) options.formerJumps = former;
    return options;
  }

  private async read(table: string): Promise<LiveTable> {
    return parseIptablesS(await this.backend.listRules(table), table);
  }

  /** Pairs desired rules with what the kernel printed at the same position, same target. */
  private learn(set: IptablesRuleSet, live: LiveTable): void {
    const pair = (chain: string, want: string, have: string | undefined): void => {
      if (have === undefined) return;
      const w = canonicalRule(want, this.backend.family);
      const h = canonicalRule(have, this.backend.family);
      if (w !== h && ruleTarget(w) === ruleTarget(h)) this.learned.set(`${set.table}\0${chain}\0${w}`, h);
    };
    for (const [chain, rules] of Object.entries(set.chains)) {
      const liveRules = live.rules.get(chain) ?? [];
      if (liveRules.length !== rules.length) continue;
      rules.forEach((r, i) => pair(chain, r, liveRules[i]));
    }
    for (const chain of BUILTIN_CHAINS[set.table]) {
      const jumps = (set.jumps ?? []).filter((j) => j.fromChain === chain);
      const liveRules = live.rules.get(chain) ?? [];
      const pre = jumps.filter((j) => j.position === 'prepend');
      const app = jumps.filter((j) => j.position === 'append');
      pre.forEach((j, i) => pair(chain, j.rule, liveRules[i]));
      app.forEach((j, i) => pair(chain, j.rule, liveRules[liveRules.length - app.length + i]));
    }
  }
}
