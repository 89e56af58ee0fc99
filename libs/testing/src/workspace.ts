import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * The monorepo root: the nearest ancestor holding nx.json, searched from this file's folder
 * (CommonJS) or from the working directory (ESM entry points such as the testbed CLI).
 */
export function workspaceRoot(): string {
  const start = typeof __dirname === 'string' ? __dirname : process.cwd();
  let dir = resolve(start);
  for (;;) {
    if (isFile(join(dir, 'nx.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the workspace root (nx.json) above ${start}`);
    dir = up;
  }
}

/**
 * Whether `path` is a file, by stat(2): unlike existsSync's access(2), which checks with the real
 * uid and no capabilities, it sees what the process may really read (a test running the lab as
 * uid 65534 with CAP_DAC_READ_SEARCH in a root-only checkout).
 */
function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
