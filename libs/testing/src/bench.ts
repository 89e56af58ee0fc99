// Helpers shared by the benchmarks (`npm run bench -- NAME`): result lines, percentiles, process
// CPU and memory readings, ordered clean-up.
import { readFileSync } from 'node:fs';
import { errorMessage, sleep } from '@knet/runtime';

/** One result line on stdout (the only thing the bench prints there). */
export interface Result {
  metric: string;
  value: number;
  unit: string;
  peer?: string;
  peer_value?: number;
  ratio?: number;
  [extra: string]: unknown;
}

/**
 * Returns the `emit` of one benchmark: writes one result as a JSON line on stdout (the only thing a
 * bench prints there), `{"bench": NAME, "metric": …}`, numbers rounded to 4 significant digits.
 */
export function resultEmitter(bench: string): (r: Result) => void {
  return (r) => {
    const round = (v: unknown) =>
      typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(4)) : v;
    const out: Record<string, unknown> = { bench };
    for (const [k, v] of Object.entries(r)) out[k] = round(v);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  };
}

/** Progress and logs: stderr only. */
export function log(msg: string): void {
  const t = new Date().toISOString().slice(11, 23);
  process.stderr.write(`[bench ${t}] ${msg}\n`);
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function median(xs: readonly number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
}

/** VmRSS and VmHWM (peak) of a process, in MiB. */
export function memoryMiB(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

/** CPU seconds (user + system) a process has used; clock ticks are 1/100 s on Linux. */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** User and system CPU seconds of a process. */
export function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) / 100, system: Number(f[12]) / 100 };
}

/** Measures how many cores each named process used between start() and stop(). */
export class CpuMeter {
  private t0 = 0;
  private readonly before = new Map<string, number>();
  private readonly beforeSys = new Map<string, number>();
  /** `trees`: names whose child processes count too (sshd forwards in a per-connection child). */
  constructor(
    private readonly pids: Record<string, number | undefined>,
    private readonly trees: readonly string[] = [],
  ) {}

  start(): this {
    this.t0 = performance.now();
    for (const [name, pid] of Object.entries(this.pids)) {
      if (pid === undefined) continue;
      this.before.set(name, safeCpu(pid, this.trees.includes(name)));
      this.beforeSys.set(name, safeSys(pid, this.trees.includes(name)));
    }
    return this;
  }

  /** CPU seconds each process used since start(). */
  seconds(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const b = this.before.get(name);
      if (pid !== undefined && b !== undefined) out[name] = safeCpu(pid, this.trees.includes(name)) - b;
    }
    return out;
  }

  /** "cores used (of which kernel): proxy 0.93 (0.41), …" over the interval. */
  stop(): string {
    const secs = (performance.now() - this.t0) / 1000;
    const parts = Object.entries(this.seconds()).map(([n, c]) => {
      const pid = this.pids[n];
      const sys =
        pid === undefined ? NaN : safeSys(pid, this.trees.includes(n)) - (this.beforeSys.get(n) ?? NaN);
      return `${n} ${(c / secs).toFixed(2)} (${(sys / secs).toFixed(2)})`;
    });
    return `cores used (kernel): ${parts.join(', ')}`;
  }
}

function safeCpu(pid: number, tree: boolean): number {
  try {
    return cpuSeconds(pid) + (tree ? descendants(pid).reduce((a, c) => a + cpuSeconds(c), 0) : 0);
  } catch {
    return NaN;
  }
}

function safeSys(pid: number, tree: boolean): number {
  try {
    return cpuTimes(pid).system + (tree ? descendants(pid).reduce((a, c) => a + cpuTimes(c).system, 0) : 0);
  } catch {
    return NaN;
  }
}

/** Child processes, recursively (sshd does its forwarding in a per-connection child). */
export function descendants(pid: number): number[] {
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

/** Stops what was started, newest first, each at most once, even when a step fails. */
export class Cleanup {
  private readonly steps: { name: string; fn: () => unknown }[] = [];

  /** Registers a stop step; the returned function runs it now (once) instead of at the end. */
  defer(name: string, fn: () => unknown): () => Promise<void> {
    const step = { name, fn };
    this.steps.push(step);
    return async () => {
      const i = this.steps.indexOf(step);
      if (i < 0) return;
      this.steps.splice(i, 1);
      await fn();
    };
  }

  private running: Promise<void> | undefined;

  /** Runs every step; a second call (a signal during the normal cleanup) waits for the same run. */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (let s = this.steps.pop(); s; s = this.steps.pop()) {
        try {
          await s.fn();
        } catch (e) {
          log(`cleanup of ${s.name} failed: ${errorMessage(e)}`);
        }
      }
      this.running = undefined;
    })();
    return this.running;
  }
}

/** Jiffies of all CPUs: total and idle (idle + iowait), from /proc/stat. */
function cpuJiffies(): { total: number; idle: number } {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { total, idle: (f[3] ?? 0) + (f[4] ?? 0) };
}

/**
 * Warns on stderr when other work keeps the machine busy: samples the whole machine for a second
 * while the bench's own processes are quiet (between phases). Returns the busy share (0-1).
 */
export async function busy(part: string): Promise<number> {
  const a = cpuJiffies();
  await sleep(1000);
  const b = cpuJiffies();
  const share = 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
  if (share > 0.25) {
    log(
      `${part}: the machine was ${(share * 100).toFixed(0)}% busy before starting (other work is running): ` +
        'expect noise',
    );
  }
  return share;
}

/** How a bench run ended: 0 done, 1 failed or over its time limit, 130 interrupted. */
export type BenchExit = 0 | 1 | 130;

/**
 * Runs a bench's `main` and stops once, whichever comes first: its end (exit 0), a failure (1),
 * the time limit (1) or SIGINT/SIGTERM (130; Ctrl-C reaches a bench up to three times: from the
 * process group, then npm's and tsx's forwarding, and the later ones must not cut the cleanup
 * short). Each way runs `cleanup` once, then `finish(code)` (e.g. remove or keep the temp dir),
 * then exits.
 */
export function runBench(
  main: () => Promise<void>,
  opts: { cleanup: Cleanup; timeLimitMs?: number; finish?: (code: BenchExit) => void },
): void {
  let stopping = false;
  const stop = (code: BenchExit, why?: string) => {
    if (stopping) return;
    stopping = true;
    if (why) log(why);
    void opts.cleanup.run().finally(() => {
      try {
        opts.finish?.(code);
      } finally {
        process.exit(code);
      }
    });
  };
  if (opts.timeLimitMs !== undefined) {
    const limit = opts.timeLimitMs;
    setTimeout(
      () => stop(1, `the bench exceeded its time limit (${limit / 60_000} min); stopping`),
      limit,
    ).unref();
  }
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => stop(130, `${sig}: stopping everything`));
  main().then(
    () => stop(0),
    (e: unknown) => stop(1, `FAILED: ${e instanceof Error && e.stack ? e.stack : errorMessage(e)}`),
  );
}
