#!/usr/bin/env node
// `npm run bench -- NAME [options]`: runs one benchmark. Results are JSON lines on stdout, one
// object per metric, e.g. {"bench":"tower","metric":"throughput","value":6.1,"unit":"Gbit/s",
// "peer":"openssh","peer_value":5.9,"ratio":1.03}; progress and logs go to stderr.
// A benchmark is found by NAME: bench/NAME/main.ts (a suite spanning apps), else
// apps/NAME/bench/main.ts or libs/NAME/bench/main.ts, or an old name in `aliases`. It runs with
// tsx; the options after NAME go to it. Benches are not part of `npm test`.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// Other names that work: alias -> benchmark (used only where the alias itself is not a benchmark).
const aliases = { gateway: 'podgw', tower: 'tower-proxy', podgw: 'gateway-sidecar' };

/** name -> entry: bench/<suite>/main.ts (suites that span apps), else <project>/bench/main.ts. */
function benches() {
  const found = new Map();
  for (const top of ['apps', 'libs']) {
    const base = join(root, top);
    if (!existsSync(base)) continue;
    for (const p of readdirSync(base)) {
      const entry = join(base, p, 'bench', 'main.ts');
      if (existsSync(entry)) found.set(p, entry);
    }
  }
  const suites = join(root, 'bench');
  if (existsSync(suites)) {
    for (const s of readdirSync(suites)) {
      const entry = join(suites, s, 'main.ts');
      if (existsSync(entry)) found.set(s, entry);
    }
  }
  for (let pass = 0; pass < 2; pass++) {
    for (const [alias, target] of Object.entries(aliases)) {
      if (found.has(target) && !found.has(alias)) found.set(alias, found.get(target));
    }
  }
  return found;
}

const [name, ...rest] = process.argv.slice(2);
const all = benches();
if (!name || name === '--help' || name === '-h' || !all.has(name)) {
  const list = [...all].map(([n, e]) => `  ${n.padEnd(14)} ${relative(root, e)}`).join('\n');
  console.error(
    `${name && !name.startsWith('-') ? `bench: no benchmark named "${name}"\n` : ''}usage: npm run bench -- NAME [options]\n\nbenchmarks:\n${list}`,
  );
  process.exit(name && name !== '--help' && name !== '-h' ? 2 : 0);
}

const tsx = join(root, 'node_modules', '.bin', 'tsx');
if (!existsSync(tsx)) {
  console.error("bench: node_modules is missing; run 'npm run setup' first");
  process.exit(2);
}
const child = spawn(tsx, [all.get(name), ...rest], { cwd: root, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
