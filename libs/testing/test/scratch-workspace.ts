import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { workspaceRoot } from '../src';

export interface ScratchWorkspace {
  /** Its directory (from `beforeAll` on). */
  dir: string;
}

/**
 * A scratch copy of parts of this workspace, so that a script under test writes nothing here:
 * made in `beforeAll` of the calling block, removed in its `afterAll`. `copy` paths (relative to
 * the workspace root) are copied, `link` paths are symlinks to the real ones; their folders are
 * created.
 */
export function scratchWorkspace(
  name: string,
  parts: { copy?: string[]; link?: string[] },
): ScratchWorkspace {
  const root = workspaceRoot();
  const scratch: ScratchWorkspace = { dir: '' };
  beforeAll(() => {
    scratch.dir = mkdtempSync(join(tmpdir(), `knet-${name}-`));
    const at = (path: string) => {
      mkdirSync(dirname(join(scratch.dir, path)), { recursive: true });
      return join(scratch.dir, path);
    };
    for (const path of parts.copy ?? []) copyFileSync(join(root, path), at(path));
    for (const path of parts.link ?? []) symlinkSync(join(root, path), at(path));
  });
  afterAll(() => {
    if (scratch.dir) rmSync(scratch.dir, { recursive: true, force: true });
  });
  return scratch;
}

/** `group/<project>/path` for every project of `group` (`apps`, `libs`) in this workspace. */
export function inEachProject(group: string, path = ''): string[] {
  return readdirSync(join(workspaceRoot(), group)).map((project) => join(group, project, path));
}
