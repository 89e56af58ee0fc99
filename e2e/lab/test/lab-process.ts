/**
 * `npm run lab` in a child process, as a user runs it (node --import tsx, as the npm script), for
 * the lab's suites: its JSON events, its stderr, and what it left on the machine, checked from outside.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { namespaceOwner, parseNetnsList, workspaceRoot } from '@knet/testing';

export const root = workspaceRoot();
/** As the npm script runs it: node with tsx's loader, no tsx front process (which could SIGKILL the lab on Ctrl-C). */
export const NODE_TSX = [process.execPath, '--import', 'tsx'];
export const MAIN = join(root, 'e2e', 'lab', 'src', 'main.ts');

export interface LabEvent {
  event: string;
  [k: string]: unknown;
}

export interface Run {
  child: ChildProcess;
  events: LabEvent[];
  stderr: () => string;
  exited: Promise<number | null>;
  /** Resolves with the first event that matches. */
  waitFor(pred: (e: LabEvent) => boolean, ms?: number): Promise<LabEvent>;
}

export function lab(args: string[], env: NodeJS.ProcessEnv = process.env, prefix: string[] = []): Run {
  const argv = [...prefix, ...NODE_TSX, MAIN, ...args];
  const child = spawn(argv[0] as string, argv.slice(1), {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: LabEvent[] = [];
  let err = '';
  const waiters: { pred: (e: LabEvent) => boolean; resolve: (e: LabEvent) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    let e: LabEvent;
    try {
      e = JSON.parse(l) as LabEvent;
    } catch {
      e = { event: 'text', line: l };
    }
    events.push(e);
    for (const w of [...waiters]) {
      if (w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    events,
    stderr: () => err,
    exited,
    waitFor(pred, ms = 300_000) {
      const found = events.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () =>
            reject(
              new Error(
                `no such lab event within ${ms} ms; events: ${JSON.stringify(events.slice(-5))}; stderr: ${err}`,
              ),
            ),
          ms,
        );
        waiters.push({
          pred,
          resolve: (e) => {
            clearTimeout(t);
            resolve(e);
          },
        });
        void exited.then(() => {
          clearTimeout(t);
          reject(
            new Error(`the lab exited first; events: ${JSON.stringify(events.slice(-5))}; stderr: ${err}`),
          );
        });
      });
    },
  };
}

/** What a lab process `pid` left on the machine, checked from outside it. */
export function leftBy(pid: number): string[] {
  const ns = parseNetnsList(spawnSync('ip', ['netns', 'list']).stdout.toString()).filter(
    (n) => namespaceOwner(n) === pid,
  );
  const temp = readdirSync(tmpdir()).filter((d) => d.startsWith(`knet-lab-${pid}-`));
  // Processes of the run: everything it started had TMPDIR in its temp folder.
  const procs: string[] = [];
  for (const p of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      if (readFileSync(`/proc/${p}/environ`, 'utf8').includes(`knet-lab-${pid}-`)) procs.push(p);
    } catch {
      // gone, or a kernel thread
    }
  }
  return [...ns.map((n) => `netns ${n}`), ...temp.map((t) => `temp ${t}`), ...procs.map((p) => `pid ${p}`)];
}
