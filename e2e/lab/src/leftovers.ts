/** What a lab process left behind after its teardown: its network namespaces, processes, temp dirs. */
import { readFileSync, readdirSync } from 'node:fs';
import { execArgv, namespaceOwner, parseNetnsList } from '@knet/testing';

/** Network namespaces created by `pid` (the harness encodes the owner in the name). */
export async function namespacesOf(pid: number): Promise<string[]> {
  const r = await execArgv(['ip', 'netns', 'list'], { check: false });
  return parseNetnsList(r.stdout).filter((n) => namespaceOwner(n) === pid);
}

/** Live descendants of `pid` as `name(pid)`, except esbuild's service (it lives as long as the process). */
export function descendantsOf(pid: number, proc = '/proc'): string[] {
  const parent = new Map<number, number>();
  const name = new Map<number, string>();
  for (const e of readdirSync(proc)) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`${proc}/${e}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may hold spaces and parentheses.
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      if (fields[0] === 'Z') continue;
      parent.set(Number(e), Number(fields[1]));
      name.set(Number(e), stat.slice(stat.indexOf('(') + 1, close));
    } catch {
      // gone meanwhile
    }
  }
  const out: string[] = [];
  for (const p of parent.keys()) {
    let q = parent.get(p);
    for (let depth = 0; q !== undefined && q > 1 && depth < 64; depth++) {
      if (q === pid) {
        const n = name.get(p) ?? '?';
        if (n !== 'esbuild') out.push(`${n}(${p})`);
        break;
      }
      q = parent.get(q);
    }
  }
  return out.sort();
}

/** Entries in the run's temp folder, except this process's app bundles (removed when it exits). */
export function tempLeft(tmp: string, pid: number): string[] {
  let entries: string[];
  try {
    entries = readdirSync(tmp);
  } catch {
    return [];
  }
  return entries.filter((e) => !e.startsWith(`knet-bundle-${pid}-`)).map((e) => `${tmp}/${e}`);
}

export async function leftovers(pid: number, tmp: string): Promise<string[]> {
  return [
    ...(await namespacesOf(pid)).map((n) => `network namespace ${n}`),
    ...descendantsOf(pid).map((p) => `process ${p}`),
    ...tempLeft(tmp, pid).map((d) => `temp ${d}`),
  ];
}
