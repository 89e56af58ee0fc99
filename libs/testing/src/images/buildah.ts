import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeExit, oneLine, run } from '../exec';

/**
 * buildah on a private storage (vfs driver: no fuse or overlay mounts; root and runroot under the
 * image cache), never the machine's /var/lib/containers. Callers hold the images build lock.
 */
export class Buildah {
  readonly root: string;
  readonly runroot: string;
  private readonly tmp: string;

  constructor(dir: string) {
    this.root = join(dir, 'root');
    this.runroot = join(dir, 'runroot');
    this.tmp = join(dir, 'tmp');
    for (const d of [this.root, this.runroot, this.tmp]) mkdirSync(d, { recursive: true });
  }

  /** `buildah <global flags> ARGS`; a failure is one line with the end of buildah's stderr. */
  async run(args: readonly string[], options: { timeoutMs?: number; cwd?: string } = {}): Promise<string> {
    const r = await this.tryRun(args, options);
    if (r.exitCode !== 0) {
      const said = oneLine(
        r.stderr.split('\n').slice(-8).join(' ') || r.stdout.split('\n').slice(-4).join(' '),
      );
      throw new Error(`buildah ${args.slice(0, 2).join(' ')} failed (${describeExit(r)}): ${said}`);
    }
    return r.stdout.trim();
  }

  tryRun(args: readonly string[], options: { timeoutMs?: number; cwd?: string } = {}) {
    return run('buildah', [...this.globalFlags(), ...args], {
      timeoutMs: options.timeoutMs ?? 600_000,
      env: { ...process.env, TMPDIR: this.tmp, BUILDAH_ISOLATION: 'chroot' },
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
  }

  globalFlags(): string[] {
    return ['--storage-driver', 'vfs', '--root', this.root, '--runroot', this.runroot];
  }

  async hasImage(ref: string): Promise<boolean> {
    return (
      (await this.tryRun(['inspect', '--type', 'image', '--format', '{{.FromImageID}}', ref])).exitCode === 0
    );
  }

  /** Removes working containers; with `all`, every one of this storage (the lock holder's leftovers). */
  async removeContainers(ids: readonly string[] | 'all'): Promise<void> {
    if (ids === 'all') await this.tryRun(['rm', '--all']);
    else if (ids.length > 0) await this.tryRun(['rm', ...ids]);
  }
}
