import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
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
      const m = /^\/\/ ((?:node_modules|apps|libs)\/\S+)$/.exec(l);
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
  const ws = /^((?:apps|libs)\/[^/]+)/.exec(module);
  return ws?.[1] ?? module;
}

/**
 * Self time of the hottest functions and per package in the `.cpuprofile` files of `dir`, as
 * text lines (for stderr). `bundle` maps bundle lines back to modules.
 */
export function summarizeProfiles(dir: string, bundle: string, top = 15): string[] {
  if (!existsSync(dir)) return [`no profiles in ${dir}`];
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const mod = moduleLines(bundle);
  const out: string[] = [];
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile;
    const totalHits = p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0) || 1;
    const wallMs = (p.endTime - p.startTime) / 1000;
    const byFn = new Map<string, number>();
    const byPkg = new Map<string, number>();
    for (const n of p.nodes) {
      const hits = n.hitCount ?? 0;
      if (!hits) continue;
      const { functionName, url, lineNumber } = n.callFrame;
      const where = url.endsWith('.cjs') || url.endsWith('.js') ? mod(lineNumber) : url || '(native)';
      const key = `${functionName || '(anonymous)'} ${url.startsWith('node:') ? url : where}`;
      byFn.set(key, (byFn.get(key) ?? 0) + hits);
      const pkg =
        functionName.startsWith('(') && !url
          ? functionName
          : url.startsWith('node:')
            ? 'node:internal'
            : packageOf(where);
      byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + hits);
    }
    const pct = (h: number) => `${((100 * h) / totalHits).toFixed(1).padStart(5)}%`;
    out.push(`profile ${f} (${(wallMs / 1000).toFixed(1)} s):`);
    out.push('  by package (self time):');
    for (const [k, h] of [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, 10)) out.push(`    ${pct(h)}  ${k}`);
    out.push(`  top ${top} functions (self time):`);
    for (const [k, h] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`    ${pct(h)}  ${k}`);
  }
  return out;
}
