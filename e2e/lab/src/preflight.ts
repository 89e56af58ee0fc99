/**
 * What must hold before the lab creates anything: root, iproute2's `ip netns`, and no other lab
 * running from the same folder. A refusal is one sentence and exit code 2, and nothing is created.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, errorMessage } from '@knet/runtime';
import { checkNetLabSupport, processAlive } from '@knet/testing';

/** The lab cannot start here: printed as one line (`lab: error: …`), exit code 2 (a UsageError). */
export class LabRefusal extends UsageError {
  override readonly name = 'LabRefusal';
}

export interface PreflightEnv {
  uid?: number;
  /** The `ip` command (tests point it at a missing one). */
  ip?: string;
}

/** Root and `ip netns list`, in that order. */
export async function checkMachine(env: PreflightEnv = {}): Promise<void> {
  const uid = env.uid ?? process.getuid?.();
  if (uid !== 0) {
    throw new LabRefusal(
      `the lab needs root (it creates network namespaces, veth pairs and iptables rules inside them), but runs as uid ${uid ?? 'unknown'}: run it as root, e.g. sudo npm run lab`,
    );
  }
  try {
    await checkNetLabSupport({ uid: 0, ...(env.ip === undefined ? {} : { ip: env.ip }) });
  } catch (e) {
    const why = errorMessage(e).replace(/^.*?\(ip netns\):\s*/, '');
    throw new LabRefusal(
      `the lab needs iproute2's \`ip netns\`, which failed here (${why}): install iproute2 (npm run setup does)`,
    );
  }
}

/** The lab folder's lock file. */
export const LOCK_FILE = 'lab.pid';

/**
 * Takes the lab folder: creates it and writes this process's pid to `lab.pid`, unless a live
 * process holds it (LabRefusal, nothing touched). A lock left by a lab that died is taken over.
 * Resolves to the release function (removes the lock file).
 */
export function takeLabDir(dir: string, shownDir: string, pid = process.pid): () => void {
  const lock = join(dir, LOCK_FILE);
  mkdirSync(dir, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(lock, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(readFileSync(lock, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== pid && processAlive(holder)) {
        throw new LabRefusal(
          `a lab is already running from ${shownDir} (pid ${holder}, ${shownDir}/${LOCK_FILE}): use it, or stop it with Ctrl-C in its terminal or kill ${holder}`,
        );
      }
      rmSync(lock, { force: true }); // a dead lab's
      continue;
    }
    writeSync(fd, `${pid}\n`);
    closeSync(fd);
    return () => rmSync(lock, { force: true });
  }
  throw new LabRefusal(`cannot take ${shownDir}/${LOCK_FILE}: another lab is starting from the same folder`);
}
