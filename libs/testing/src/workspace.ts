import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * The monorepo root: the nearest ancestor holding nx.json, searched from this file's folder
 * (CommonJS) or from the working directory (ESM entry points such as the testbed CLI).
 */
export function workspaceRoot(): string {
  const start = typeof __dirname === 'string' ? __dirname : process.cwd();
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, 'nx.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the workspace root (nx.json) above ${start}`);
    dir = up;
  }
}
