/**
 * Imported first by main.ts. tsx runs the bench as CommonJS, and `@knet/testing` (through
 * `@knet/host-net`'s runner) requires execa 9, whose dependency `unicorn-magic` exports only an
 * `import` condition, which CommonJS resolution does not match. When that resolution fails, point
 * at the package's Node entry (tsx compiles it), as jest.preset.cjs's moduleNameMapper does.
 * Without the failure (nothing in the chain needs it) this changes nothing.
 */
import Module from 'node:module';
import { join } from 'node:path';

type Resolve = (request: string, ...rest: unknown[]) => string;
const loader = Module as unknown as { _resolveFilename: Resolve };
const original = loader._resolveFilename;
const entry = join(__dirname, '..', '..', 'node_modules', 'unicorn-magic', 'node.js');

loader._resolveFilename = (request: string, ...rest: unknown[]): string => {
  try {
    return original(request, ...rest);
  } catch (e) {
    if (request === 'unicorn-magic') return entry;
    throw e;
  }
};
