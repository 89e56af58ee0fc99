import { execArgv } from '../exec';

/**
 * What the root network namespace is configured with: links, addresses, routes of every table,
 * rules, and the iptables/ip6tables rules of every table (packet counters dropped). Tests take it
 * before and after a run and compare: the harness must never change it. Interface statistics and
 * link state flags that traffic alone changes are left out.
 */
export async function rootNetworkState(): Promise<string> {
  const out: string[] = [];
  const section = async (title: string, argv: string[], normalize: (s: string) => string = (s) => s) => {
    const r = await execArgv(argv, { check: false });
    out.push(
      `## ${title}`,
      normalize(r.exitCode === 0 ? r.stdout : `(${argv[0]} failed: ${r.stderr.trim()})`),
    );
  };
  await section('links', ['ip', '-o', 'link', 'show'], (s) =>
    s
      .split('\n')
      .map((l) => l.replace(/\\\s+link\/.*$/, '').replace(/ state \S+/, ''))
      .join('\n'),
  );
  await section('addresses', ['ip', '-o', 'addr', 'show'], (s) =>
    s.replace(/valid_lft \S+ preferred_lft \S+/g, ''),
  );
  // Both families: `table all` lists IPv6 routes too.
  await section('routes', ['ip', 'route', 'show', 'table', 'all'], (s) => s.replace(/expires \S+/g, ''));
  await section('routes6', ['ip', '-6', 'route', 'show', 'table', 'all'], (s) =>
    s.replace(/expires \S+/g, ''),
  );
  await section('rules', ['ip', 'rule', 'show']);
  const rules = (s: string) =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/g, ''))
      .join('\n');
  await section('iptables', ['iptables-save'], rules);
  await section('ip6tables', ['ip6tables-save'], rules);
  return out.join('\n');
}
