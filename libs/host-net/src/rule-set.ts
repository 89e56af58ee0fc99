import { canonicalPrefix, parsePrefix } from './addr-math';
import { definedFields } from './defined-fields';
import { hex, ruleFamily } from './ip-args';
import { tableName } from './ip-names';
import type { Family, IpRoute, Rule, RuleSpec } from './ip-types';
import { OwnedSet, ProtocolOwnership, unless } from './owned-set';
import type { Logger } from './runner';

export interface RuleSetOptions {
  /**
   * The protocol that marks the rules as this set's (`ip rule ... protocol N`, a number or an
   * rt_protos name; Linux 4.17+). Rules with another protocol — the same rule added by someone
   * else included — are never touched.
   */
  protocol: string | number;
  /** The families it manages (default both). */
  families?: readonly Family[];
  logger?: Logger;
}

/** A desired rule in the form `ip -j rule show` prints it. */
interface WantRule {
  family: Family;
  priority: number;
  from: string;
  to?: string;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  table: string;
  suppressPrefixLength?: number;
}

const FULL_MASK = 0xffffffff;

/**
 * Policy-routing rules owned by a rule protocol, IPv4 and IPv6, as desired state. A rule is
 * identified by everything it says (a rule cannot be changed in place): a desired rule that is
 * not there is added, an owned rule that is not desired is deleted. Every desired rule needs a
 * priority (without one the kernel picks it, and the rule could not be found again).
 */
export class RuleSet extends OwnedSet<readonly RuleSpec[], WantRule, Rule> {
  private readonly ownership: ProtocolOwnership;
  protected readonly label: string;

  constructor(
    private readonly ip: IpRoute,
    options: RuleSetOptions,
  ) {
    super('rule', options.logger);
    this.ownership = new ProtocolOwnership(options.protocol, options.families, 'this set');
    this.label = `rules proto ${this.ownership.protocol}`;
  }

  /** The live rules with this protocol. */
  async owned(): Promise<Rule[]> {
    return this.ownership.owned((family) => this.ip.listRules({ family }));
  }

  protected normalize(desired: readonly RuleSpec[]): WantRule[] {
    return desired.map((r) => {
      const where = `${this.label}: rule ${describeSpec(r)}`;
      if (r.priority === undefined) throw new TypeError(`${where} has no priority: give each rule one`);
      for (const p of [r.from, r.to]) {
        if (p !== undefined && p !== 'all' && !parsePrefix(p))
          throw new TypeError(`${where}: ${p} is not a prefix`);
      }
      const family = ruleFamily(r);
      this.ownership.check(where, family, r.protocol);
      const want: WantRule = {
        family,
        priority: r.priority,
        from: r.from === undefined ? 'all' : canonicalPrefix(r.from, 'all'),
        table: tableName(r.table ?? 'main'),
      };
      if (r.to !== undefined) want.to = canonicalPrefix(r.to, 'all');
      if (r.fwmark !== undefined) want.fwmark = r.fwmark;
      if (r.fwmark !== undefined && r.fwmask !== undefined && r.fwmask !== FULL_MASK) want.fwmask = r.fwmask;
      if (r.iif !== undefined) want.iif = r.iif;
      if (r.oif !== undefined) want.oif = r.oif;
      if (r.suppressPrefixLength !== undefined) want.suppressPrefixLength = r.suppressPrefixLength;
      return want;
    });
  }

  protected wantKey(r: WantRule): string {
    return ruleKey({ ...r, action: undefined });
  }

  protected liveKey(r: Rule): string {
    return ruleKey(r);
  }

  protected compare(): string[] {
    return []; // the key is the whole rule
  }

  protected describeWant(r: WantRule): string {
    return describeRule(r);
  }

  protected describeLive(r: Rule): string {
    return describeRule(r);
  }

  protected async add(r: WantRule): Promise<void> {
    await this.ip.addRule({ ...r, protocol: this.ownership.protocol });
  }

  protected async change(): Promise<void> {
    // Never called: rules that differ have different keys (missing + extra).
  }

  protected async remove(r: Rule): Promise<void> {
    // The rule as listed, less its action (`ip rule del` takes none), under our protocol.
    const { from, action: _action, ...rest } = r;
    const spec = definedFields<RuleSpec>({
      ...rest,
      from: from === 'all' ? undefined : from,
      protocol: this.ownership.protocol,
    });
    await unless(['not-found'], () => this.ip.deleteRule(spec));
  }
}

type RuleFields = Omit<Rule, 'protocol' | 'table' | 'action'> & {
  table?: string;
  action?: string | undefined;
};

function ruleKey(r: RuleFields): string {
  return JSON.stringify([
    r.family,
    r.priority,
    r.from,
    r.to ?? null,
    r.fwmark ?? null,
    r.fwmask ?? null,
    r.iif ?? null,
    r.oif ?? null,
    r.table ?? null,
    r.suppressPrefixLength ?? null,
    r.action ?? null,
  ]);
}

/** As `ip rule` prints it: `pref 50 from all lookup main suppress_prefixlength 0`. */
function describeRule(r: RuleFields): string {
  return [
    `pref ${r.priority} from ${r.from}`,
    r.to !== undefined ? ` to ${r.to}` : '',
    r.fwmark !== undefined
      ? ` fwmark ${hex(r.fwmark)}${r.fwmask !== undefined ? `/${hex(r.fwmask)}` : ''}`
      : '',
    r.iif !== undefined ? ` iif ${r.iif}` : '',
    r.oif !== undefined ? ` oif ${r.oif}` : '',
    r.table !== undefined ? ` lookup ${r.table}` : ` ${r.action ?? ''}`,
    r.suppressPrefixLength !== undefined ? ` suppress_prefixlength ${r.suppressPrefixLength}` : '',
  ].join('');
}

function describeSpec(r: RuleSpec): string {
  return `${r.priority ?? '-'} from ${r.from ?? 'all'} lookup ${r.table ?? 'main'}`;
}
