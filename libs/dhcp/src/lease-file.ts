// The server's lease file: the pool snapshot as JSON, written atomically (temp file + rename, 0600)
// and debounced; a file that cannot be used is renamed aside, never deleted.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errorMessage, type Logger } from '@knet/runtime';
import { parseLeaseSnapshot, type LeaseSnapshot } from './pool';

/** `lease.json.corrupt-2025-01-02T03-04-05-678Z` */
export function corruptName(path: string, now = new Date()): string {
  return `${path}.corrupt-${now.toISOString().replace(/[:.]/g, '-')}`;
}

/**
 * Reads the lease file. Missing → undefined. Unreadable JSON or an invalid document → the file is
 * renamed to `<path>.corrupt-<timestamp>` (one warning) and undefined is returned, so the server
 * starts empty and the old content is kept for inspection.
 */
export async function readLeaseFile(path: string, logger: Logger): Promise<LeaseSnapshot | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read lease file ${path}: ${errorMessage(err)}`);
  }
  try {
    return parseLeaseSnapshot(JSON.parse(text));
  } catch (err) {
    const aside = corruptName(path);
    await rename(path, aside);
    logger.warn(
      { leaseFile: path, movedTo: aside, error: errorMessage(err).split('\n')[0] },
      'dhcp: lease file unusable; moved aside, starting with no leases',
    );
    return undefined;
  }
}

/** Writes `doc` as JSON to `path` atomically: a 0600 temp file in the same directory, fsync, rename. */
export async function writeLeaseFile(path: string, doc: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(doc, null, 1)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // Best effort: make the rename itself durable.
  try {
    const d = await open(dirname(path), 'r');
    await d.sync().finally(() => d.close());
  } catch {
    // some filesystems do not allow fsync on directories
  }
}

/** Debounced writer: `schedule()` after every change, `flush()` on shutdown. */
export class LeaseFileWriter {
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private writing: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly document: () => unknown,
    private readonly logger: Logger,
    private readonly debounceMs = 500,
  ) {}

  schedule(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.debounceMs);
    this.timer.unref();
  }

  /** Writes now if anything changed since the last write; waits for a write in progress. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.writing) await this.writing;
    if (!this.dirty) return;
    this.dirty = false;
    this.writing = writeLeaseFile(this.path, this.document())
      .catch((err: Error) => {
        this.dirty = true;
        this.logger.error({ leaseFile: this.path, error: err.message }, 'dhcp: cannot write lease file');
      })
      .finally(() => {
        this.writing = undefined;
      });
    await this.writing;
  }
}
