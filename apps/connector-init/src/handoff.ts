import { constants as fsc } from 'node:fs';
import { chmod, copyFile, mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sleep } from '@knet/runtime';

/**
 * The token handoff between connector-init (a native sidecar) and the vendor's connector
 * container of the same pod, through a memory emptyDir both mount:
 *
 * - `sh`: a copy of a static shell (the vendor image need not have one), `launch`: LAUNCH_SCRIPT;
 *   the connector container's command is `<dir>/sh <dir>/launch <entrypoint> [args]`;
 * - `tokens`: a FIFO. The launcher opens it for reading and blocks; connector-init sees a reader,
 *   writes the pair (two lines) and closes. The launcher exports TWINGATE_ACCESS_TOKEN and
 *   TWINGATE_REFRESH_TOKEN and execs the connector. The tokens never touch a disk, a Secret or the
 *   API server; every later reader (a restarted connector container) gets a fresh pair of the same
 *   connector. Each reader gets its own FIFO (see `renew`), so a launcher still reading its pair is
 *   never mistaken for a restart — which would revoke the pair it is about to use.
 */
export const LAUNCH_SCRIPT = `# connector-init launcher (written by connector-init; see apps/connector-init/README.md).
# Reads this pod's connector tokens from the FIFO next to this script, then execs the connector.
# Only shell builtins: the vendor image may have no coreutils.
set -eu
case "$0" in */*) dir=\${0%/*} ;; *) dir=. ;; esac
if [ "$#" -eq 0 ]; then
  echo "launch: usage: launch <connector command> [args...]" >&2
  exit 2
fi
if [ ! -p "$dir/tokens" ]; then
  echo "launch: $dir/tokens is not a FIFO: is the connector-init sidecar running?" >&2
  exit 1
fi
echo "launch: waiting for connector-init to hand over this connector's tokens" >&2
access=
refresh=
{ IFS= read -r access || true; IFS= read -r refresh || true; } <"$dir/tokens"
if [ -z "$access" ] || [ -z "$refresh" ]; then
  echo "launch: connector-init closed the handoff without a token pair; exiting to be restarted" >&2
  exit 1
fi
TWINGATE_ACCESS_TOKEN=$access
TWINGATE_REFRESH_TOKEN=$refresh
export TWINGATE_ACCESS_TOKEN TWINGATE_REFRESH_TOKEN
unset access refresh
exec "$@"
`;

const TOKEN_CHARS = /^[A-Za-z0-9._~+/=-]+$/;

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
}

export class Handoff {
  readonly fifo: string;
  /** How a FIFO is made: `mkfifo`, or the multi-call busybox's applet (the image has no coreutils). */
  private mkfifo: readonly string[] = ['mkfifo'];

  constructor(readonly dir: string) {
    this.fifo = join(dir, 'tokens');
  }

  /**
   * Creates the FIFO (mode 0600) unless there is one — a launcher may be waiting on it for a
   * sidecar that restarted — then writes `sh` (a copy of `shell`) and, last, `launch`: once
   * `launch` exists, everything it needs does.
   */
  async install(shell: string): Promise<void> {
    if (basename(shell) === 'busybox') this.mkfifo = [shell, 'mkfifo'];
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    const existing = await stat(this.fifo).catch(() => undefined);
    if (existing?.isFIFO()) await chmod(this.fifo, 0o600);
    else await this.renew();
    const sh = join(this.dir, 'sh');
    await rm(`${sh}.new`, { force: true });
    await copyFile(shell, `${sh}.new`);
    await chmod(`${sh}.new`, 0o555);
    await rename(`${sh}.new`, sh);
    const launch = join(this.dir, 'launch');
    await writeFile(`${launch}.new`, LAUNCH_SCRIPT, { mode: 0o444 });
    await rename(`${launch}.new`, launch);
  }

  /**
   * Puts a new FIFO at the path (atomically, by rename). A reader that has the old one open — a
   * launcher still reading the pair it was just given — is then invisible to `waitForReader`:
   * only a launcher that opens the path afterwards (a container restart) counts as a new reader.
   */
  private async renew(): Promise<void> {
    const next = `${this.fifo}.new`;
    await rm(next, { force: true, recursive: true });
    const [cmd = 'mkfifo', ...pre] = this.mkfifo;
    await promisify(execFile)(cmd, [...pre, '-m', '600', next]);
    await chmod(next, 0o600);
    await rename(next, this.fifo);
  }

  /**
   * Waits until a launcher has the FIFO open for reading (polling a non-blocking open every
   * `pollMs`), then returns a writer for one pair. Resolves undefined when `signal` aborts.
   */
  async waitForReader(signal: AbortSignal, pollMs = 200): Promise<HandoffWriter | undefined> {
    while (!signal.aborted) {
      try {
        const fh = await open(this.fifo, fsc.O_WRONLY | fsc.O_NONBLOCK);
        try {
          await this.renew();
        } catch (e) {
          await fh.close();
          throw e;
        }
        return new HandoffWriter(fh);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;
      }
      await sleep(pollMs, signal);
    }
    return undefined;
  }
}

/** One reader's end of the handoff: give it a pair, or close it empty (it exits and is restarted). */
export class HandoffWriter {
  constructor(private readonly fh: Awaited<ReturnType<typeof open>>) {}

  async give(pair: TokenPair): Promise<void> {
    for (const t of [pair.accessToken, pair.refreshToken]) {
      if (!TOKEN_CHARS.test(t))
        throw new Error('a token from the API has characters a token never has; not handing it over');
    }
    try {
      await this.fh.write(`${pair.accessToken}\n${pair.refreshToken}\n`);
    } finally {
      await this.fh.close();
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
