import { existsSync, readFileSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
}

/** A V8 CPU profile (the inspector's Profiler.stop, or a .cpuprofile file). */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
}

/**
 * Which source module a position of a bundle comes from, through the bundle's source map (the
 * bundles have no comments or line breaks to go by). '?' without a map.
 */
function moduleAt(bundle: string): (line: number, column: number) => string {
  const mapFile = `${bundle}.map`;
  if (!existsSync(mapFile)) return () => '?';
  const map = new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')) as SourceMapPayload);
  return (line, column) => {
    const e = map.findEntry(line, column) as { originalSource?: string };
    return e.originalSource?.replace(/^(\.\.\/)+/, '') ?? '?';
  };
}

/** A package or workspace folder for a module path: `ssh2`, `ws`, `apps/tower-proxy`, … */
function packageOf(module: string): string {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(module);
  if (nm?.[1]) return nm[1];
  const ws = /(?:^|\/)((?:apps|libs)\/[^/]+)/.exec(module);
  return ws?.[1] ?? module;
}

/**
 * Where a process spent its CPU: share of busy (non-idle) samples per package and for the hottest
 * functions (self time), as text lines for stderr. `bundle` (its map) leads back to modules.
 */
export function summarizeProfile(name: string, p: CpuProfile, bundle: string, top = 12): string[] {
  const mod = moduleAt(bundle);
  const byFn = new Map<string, number>();
  const byPkg = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const n of p.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits) continue;
    total += hits;
    const { functionName, url, lineNumber, columnNumber } = n.callFrame;
    if (functionName === '(idle)') {
      idle += hits;
      continue;
    }
    const inBundle = url.endsWith('.cjs') || url.endsWith('.js');
    const where = inBundle ? mod(lineNumber, columnNumber) : url || '(native)';
    const key = `${functionName || '(anonymous)'} ${url.startsWith('node:') ? url : where}`;
    byFn.set(key, (byFn.get(key) ?? 0) + hits);
    const pkg =
      !url && functionName.startsWith('(')
        ? functionName
        : url.startsWith('node:')
          ? 'node:internal'
          : !url
            ? '(native)'
            : packageOf(where);
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + hits);
  }
  const busy = total - idle || 1;
  const secs = (p.endTime - p.startTime) / 1e6;
  const pct = (h: number) => `${((100 * h) / busy).toFixed(1).padStart(5)}%`;
  const out = [
    `${name}: busy ${(100 * (busy / (total || 1))).toFixed(0)}% of ${secs.toFixed(1)} s; by package (share of busy time):`,
  ];
  for (const [k, h] of [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, 8)) out.push(`  ${pct(h)}  ${k}`);
  out.push(`${name}: top ${top} functions (self time):`);
  for (const [k, h] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${pct(h)}  ${k}`);
  return out;
}
