import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { workspaceRoot } from './workspace';

/**
 * The node flags an image runs its app with: the arguments between the node binary and
 * `/app/main.js` in the ENTRYPOINT of `docker/<dockerfile>`. Tests and benchmarks start the bundles
 * with them, so they run the apps as they ship. (V8 flags belong in the ENTRYPOINT: Node refuses
 * them in NODE_OPTIONS.)
 */
export function shippedNodeFlags(dockerfile: string, dir = join(workspaceRoot(), 'docker')): string[] {
  const path = join(dir, dockerfile);
  const text = readFileSync(path, 'utf8');
  const entrypoints = [...text.matchAll(/^ENTRYPOINT\s+(.*)$/gm)].map((m) => (m[1] ?? '').trim());
  const expected = 'expected one ENTRYPOINT ["node" or "/nodejs/bin/node", flags…, "/app/main.js"]';
  if (entrypoints.length !== 1) throw new Error(`${path}: ${expected}, found ${entrypoints.length}`);
  const raw = entrypoints[0] as string;
  let argv: unknown;
  try {
    argv = JSON.parse(raw);
  } catch {
    throw new Error(`${path}: ${expected} (exec form), got ${raw}`);
  }
  if (
    !Array.isArray(argv) ||
    !argv.every((a): a is string => typeof a === 'string') ||
    !/(^|\/)node$/.test(argv[0] ?? '') ||
    argv[argv.length - 1] !== '/app/main.js' ||
    !argv.slice(1, -1).every((a) => a.startsWith('--'))
  ) {
    throw new Error(`${path}: ${expected}, got ${raw}`);
  }
  return argv.slice(1, -1);
}
