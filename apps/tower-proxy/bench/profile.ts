import { existsSync, readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** A V8 CPU profile (the inspector's Profiler.stop, or a .cpuprofile file). */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
}

/**
 * Which source module each line of an esbuild bundle comes from: esbuild (not minified) writes a
 * `// path/of/module.js` comment before each module's code.
 */
function moduleLines(bundle: string): (line: number) => string {
  if (!existsSync(bundle)) return () => '?';
  const starts: { line: number; module: string }[] = [];
  readFileSync(bundle, 'utf8')
    .split('\n')
    .forEach((l, i) => {
      const m = /^\/\/ (\S+\.(?:[cm]?js|ts|json))$/.exec(l);
      if (m?.[1]) starts.push({ line: i, module: m[1] });
    });
  return (line) => {
    let lo = 0;
    let hi = starts.length - 1;
    let best = '?';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = starts[mid];
      if (!s) break;
      if (s.line <= line) {
        best = s.module;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
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
 * functions (self time), as text lines for stderr. `bundle` maps bundle lines back to modules.
 */
export function summarizeProfile(name: string, p: CpuProfile, bundle: string, top = 12): string[] {
  const mod = moduleLines(bundle);
  const byFn = new Map<string, number>();
  const byPkg = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const n of p.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits) continue;
    total += hits;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') {
      idle += hits;
      continue;
    }
    const inBundle = url.endsWith('.cjs') || url.endsWith('.js');
    const where = inBundle ? mod(lineNumber) : url || '(native)';
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
