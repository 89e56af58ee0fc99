/**
 * The lab's run: preflight → build (test bed binaries, app bundles) with progress → each scene up
 * and its proofs → the live table (or, with --check, a summary) → teardown with a count of what is
 * left. Everything the machine is touched through comes in `LabDeps`, so runner.spec.ts drives it
 * with fake scenes.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError, errorMessage } from '@knet/runtime';
import type { NodeBed } from '@knet/testing';
import { formatMs, formatProofLines, green, red, renderTable, type RowView, type SceneView } from './display';
import { LabRefusal, takeLabDir } from './preflight';
import { selectScenes, type LabClusters, type LabContext, type Row, type Scene } from './scene';
import { Teardown } from './teardown';

export interface LabOptions {
  check: boolean;
  only: readonly string[];
  keep: boolean;
  json: boolean;
  /** Absolute lab folder, and how to show it (`.lab`). */
  dir: string;
  shownDir: string;
  refreshMs: number;
}

export interface LabIo {
  /** stdout */
  write(text: string): void;
  isTTY: boolean;
  columns(): number;
  color: boolean;
}

export interface LabDeps {
  scenes: readonly Scene[];
  /** Root and `ip netns`; throws LabRefusal. */
  machine(): Promise<void>;
  /** The test bed's binaries, built when missing (`log` gets progress); `cached` when nothing was built. */
  binaries(log: (line: string) => void): Promise<{ kubectl: string; cached: boolean }>;
  /** True when the binaries are already built (the first run takes minutes). */
  binariesCached(): boolean;
  bundle(app: string): Promise<string>;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** The machine's temp folder (the lab points TMPDIR at a folder of its own): `ctx.machineTmpDir`. */
  machineTmpDir: string;
  /** What this process left behind after teardown (namespaces, processes, temp dirs). */
  leftovers(): Promise<string[]>;
  now?(): number;
  /** Test hook: how long to wait for an interrupted scene's up() (default 30 s). */
  settleAfterAbortMs?: number;
}

/**
 * How long a scene's up() may keep going after Ctrl-C before the teardown starts without it (its
 * next ctx.progress() ends it; a control plane still starting takes up to ~15 s).
 */
const SETTLE_AFTER_ABORT_MS = 30_000;

/** Thrown by ctx.progress() once the lab was interrupted: ends a scene's up() early. */
export class LabInterrupted extends Error {
  override readonly name = 'LabInterrupted';
  constructor() {
    super('interrupted (Ctrl-C)');
  }
}

export const EXIT_INTERRUPTED = 130;

type Event = Record<string, unknown> & { event: string };

export async function runLab(opts: LabOptions, io: LabIo, deps: LabDeps): Promise<number> {
  return new LabRun(opts, io, deps).main();
}

class LabRun {
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly teardown = new Teardown();
  private readonly views: SceneView[] = [];
  private clusters: LabClusters | undefined;
  private bed: NodeBed | undefined;
  /** Checks of what is left that scenes added (`ctx.checkLeftovers`), run after the lab's own. */
  private readonly leftoverChecks: { what: string; left: () => string[] | Promise<string[]> }[] = [];
  private footer = '';
  private footerSince = 0;
  private live = false;
  private kubectl = 'kubectl';
  private failed = false;
  private redrawTimer: NodeJS.Timeout | undefined;
  private footerTimer: NodeJS.Timeout | undefined;
  /** Every row with its view, for the live table's re-runs. */
  private readonly checks: { row: Row; view: RowView; scene: string }[] = [];

  constructor(
    private readonly opts: LabOptions,
    private readonly io: LabIo,
    private readonly deps: LabDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
  }

  private get fancy(): boolean {
    return this.io.isTTY && !this.opts.json;
  }

  private emit(e: Event, text?: string): void {
    if (this.opts.json) this.io.write(`${JSON.stringify(e)}\n`);
    else if (text !== undefined && !this.live) {
      this.clearFooter();
      this.io.write(`${text}\n`);
    }
  }

  async main(): Promise<number> {
    let scenes: Scene[];
    try {
      scenes = selectScenes(this.opts.only, this.deps.scenes);
    } catch (e) {
      throw new UsageError(errorMessage(e));
    }
    await this.deps.machine();
    const release = takeLabDir(this.opts.dir, this.opts.shownDir);
    // Registered first, so it runs last: the lab folder goes with the lock in it.
    this.teardown.defer('the lab folder', () => {
      release();
      removeLabFolder(this.opts.dir);
    });
    let code = 0;
    try {
      code = await this.tour(scenes);
    } finally {
      code = Math.max(code, await this.tearDown());
    }
    return code;
  }

  /** Build, bring every scene up and prove it, then wait if asked; the exit code so far. */
  private async tour(scenes: Scene[]): Promise<number> {
    const { check, keep } = this.opts;
    this.emit(
      { event: 'start', scenes: scenes.map((s) => s.name), dir: this.opts.shownDir, check },
      `lab: scenes ${scenes.map((s) => s.name).join(', ')} · folder ${this.opts.shownDir}${check ? ' · --check' : ''}`,
    );
    try {
      await this.prepare(scenes);
    } catch (e) {
      if (this.deps.signal.aborted) return EXIT_INTERRUPTED;
      throw e;
    }
    for (const s of scenes) this.views.push({ name: s.name, title: s.title, state: 'waiting', rows: [] });
    if (!check && this.fancy) this.enterLive();

    for (const [i, scene] of scenes.entries()) {
      if (this.deps.signal.aborted) return EXIT_INTERRUPTED;
      const view = this.views[i] as SceneView;
      const rows = await this.up(scene, view);
      if (rows === 'aborted') return EXIT_INTERRUPTED;
      if (rows === undefined) {
        this.failed = true;
        break;
      }
      const proved = await this.prove(scene, view, rows);
      if (!proved && check) {
        this.failed = true;
        break;
      }
      if (this.deps.signal.aborted) return EXIT_INTERRUPTED;
    }
    const all = this.views.flatMap((v) => v.rows);
    const passed = all.filter((r) => r.state === 'ok').length;
    const failed = all.filter((r) => r.state === 'failed').length;
    if (check || this.failed) {
      const secs = formatMs(this.now() - this.startedAt);
      this.emit(
        {
          event: 'summary',
          ok: !this.failed,
          passed,
          failed,
          notRun: all.length - passed - failed,
          ms: this.now() - this.startedAt,
        },
        this.failed
          ? red(
              this.io.color,
              `lab: FAILED after ${secs} (${passed} passed, ${failed} failed, ${all.length - passed - failed} not run)`,
            )
          : green(this.io.color, `lab: all ${passed} proofs passed in ${secs}`),
      );
    }
    if (!check || keep) await this.hold();
    // Interactive: what the table last said counts (a proof failing when Ctrl-C came fails the run).
    return this.failed || this.checks.some((c) => c.view.state === 'failed') ? 1 : 0;
  }

  private async prepare(scenes: Scene[]): Promise<void> {
    const started = this.now();
    if (!this.deps.binariesCached()) {
      this.emit(
        { event: 'progress', phase: 'binaries', line: 'first run: building the test bed from source' },
        'lab: first run: building the test bed (kube-apiserver, kube-controller-manager, kubectl, etcd) from the ' +
          'Go module proxy; this takes 11–16 minutes on 2 cores, once; later runs start in seconds',
      );
    }
    const bin = await this.abortable(
      this.deps.binaries((line) => this.progress('binaries', `test bed: ${line}`)),
    );
    this.kubectl = bin.kubectl;
    mkdirSync(this.opts.dir, { recursive: true });
    writeFileSync(
      join(this.opts.dir, 'env'),
      `# source ${this.opts.shownDir}/env: the test bed's kubectl and helm on PATH\nexport PATH="${dirname(bin.kubectl)}:$PATH"\n`,
    );
    this.emit(
      { event: 'binaries', cached: bin.cached, ms: this.now() - started },
      `lab: test bed binaries ${bin.cached ? 'found' : 'built'} in ${formatMs(this.now() - started)}`,
    );
    const apps = [...new Set(scenes.flatMap((s) => s.bundles))];
    const bundled = this.now();
    for (const app of apps) {
      this.progress('bundles', `bundling ${app} with esbuild (${apps.indexOf(app) + 1}/${apps.length})`);
      await this.abortable(this.deps.bundle(app));
    }
    if (apps.length > 0) {
      this.emit(
        { event: 'bundles', apps, ms: this.now() - bundled },
        `lab: ${apps.length} app bundles ready in ${formatMs(this.now() - bundled)} (${apps.join(', ')})`,
      );
    }
  }

  /** Brings a scene up; its rows, undefined when it failed, 'aborted' on Ctrl-C. */
  private async up(scene: Scene, view: SceneView): Promise<Row[] | undefined | 'aborted'> {
    view.state = 'starting';
    const started = this.now();
    this.progress(scene.name, `${scene.name}: starting`);
    const ctx = this.context(scene);
    const upping = scene.up(ctx);
    const aborted = new Promise<'aborted'>((resolve) => {
      if (this.deps.signal.aborted) resolve('aborted');
      this.deps.signal.addEventListener('abort', () => resolve('aborted'), { once: true });
    });
    try {
      const rows = await Promise.race([upping, aborted]);
      if (rows === 'aborted') {
        // Let up() stop at its next ctx.progress() and register what it started, so the teardown
        // runs in order (a namespace before its cluster). One that does not stop in time is left
        // behind: the teardown starts, and what it registers later is torn down at once.
        this.progress(scene.name, `${scene.name}: interrupted; tearing down once it stops`);
        const settled = new AbortController();
        const settleMs = this.deps.settleAfterAbortMs ?? SETTLE_AFTER_ABORT_MS;
        await Promise.race([upping.catch(() => undefined), sleepMs(settleMs, settled.signal)]);
        settled.abort();
        await this.teardown.run();
        return 'aborted';
      }
      view.state = 'up';
      view.upMs = this.now() - started;
      view.rows = rows.map((r) => ({
        component: r.component,
        proof: r.proof,
        command: r.command,
        live: r.live ?? true,
        state: 'pending',
      }));
      this.emit(
        { event: 'scene', scene: scene.name, state: 'up', ms: view.upMs },
        `== ${scene.name}: ${scene.title} (up in ${formatMs(view.upMs)})`,
      );
      this.redraw();
      return rows;
    } catch (e) {
      if (this.deps.signal.aborted) return 'aborted';
      view.state = 'failed';
      view.error = errorMessage(e).split('\n')[0] ?? '';
      this.emit(
        { event: 'scene', scene: scene.name, state: 'failed', error: view.error, ms: this.now() - started },
        red(
          this.io.color,
          `== ${scene.name}: FAILED to come up after ${formatMs(this.now() - started)}: ${view.error}`,
        ),
      );
      this.redraw();
      return undefined;
    }
  }

  /** Runs every row's check once, in order; false at the first failure (--check stops there). */
  private async prove(scene: Scene, view: SceneView, rows: Row[]): Promise<boolean> {
    let ok = true;
    for (const [i, row] of rows.entries()) {
      if (this.deps.signal.aborted) return ok;
      const v = view.rows[i] as RowView;
      this.checks.push({ row, view: v, scene: scene.name });
      this.progress(scene.name, `${scene.name}: proving ${row.component}`);
      await this.runCheck(row, v);
      this.emit(
        {
          event: 'proof',
          scene: scene.name,
          component: row.component,
          ok: v.state === 'ok',
          ms: v.ms,
          result: v.result,
          proof: row.proof,
          command: row.command,
        },
        formatProofLines(scene.name, v, this.io.color).join('\n'),
      );
      if (v.state !== 'ok') {
        ok = false;
        if (this.opts.check) return false;
      }
    }
    return ok;
  }

  private async runCheck(row: Row, v: RowView): Promise<void> {
    v.state = v.state === 'pending' ? 'checking' : v.state;
    this.redraw();
    const started = this.now();
    try {
      v.result = (await row.check()).split('\n')[0] ?? '';
      v.state = 'ok';
    } catch (e) {
      v.result = errorMessage(e).split('\n')[0] ?? 'failed';
      v.state = 'failed';
    }
    v.ms = this.now() - started;
    v.at = this.now();
    this.redraw();
  }

  private context(scene: Scene): LabContext {
    return {
      dir: this.opts.dir,
      shownDir: this.opts.shownDir,
      kubectl: this.kubectl,
      machineTmpDir: this.deps.machineTmpDir,
      progress: (line) => {
        if (this.deps.signal.aborted) throw new LabInterrupted();
        this.progress(scene.name, `${scene.name}: ${line}`);
      },
      defer: (what, step) => this.teardown.defer(`${scene.name}: ${what}`, step),
      clusters: () => {
        if (!this.clusters) throw new Error(`scene ${scene.name} needs the clusters scene, which is not up`);
        return this.clusters;
      },
      setClusters: (c) => {
        this.clusters = c;
      },
      node: () => {
        if (!this.bed) throw new Error(`scene ${scene.name} needs the node scene, which is not up`);
        return this.bed;
      },
      setNode: (bed) => {
        this.bed = bed;
      },
      checkLeftovers: (what, left) => {
        this.leftoverChecks.push({ what: `${scene.name}: ${what}`, left });
      },
    };
  }

  /**
   * Until Ctrl-C: the live table (a terminal), or the summary once and the re-run live proofs'
   * changes (no terminal, or --json), re-running live proofs every --refresh.
   */
  private async hold(): Promise<void> {
    const rows = this.checks;
    this.emit(
      { event: 'ready', ms: this.now() - this.startedAt },
      `lab: running${this.opts.keep ? ' (--keep)' : ''}; kubeconfigs and env in ${this.opts.shownDir}/ ` +
        `(source ${this.opts.shownDir}/env for kubectl); Ctrl-C tears it all down`,
    );
    this.footer = '';
    if (this.fancy) this.enterLive();
    else if (!this.opts.json) this.io.write(`${this.table().join('\n')}\n`);
    this.redraw();
    while (!this.deps.signal.aborted) {
      if (await sleepMs(this.opts.refreshMs, this.deps.signal)) break;
      for (const { row, view, scene } of rows) {
        if (this.deps.signal.aborted) break;
        if (!view.live) continue;
        const before = view.state;
        await this.runCheck(row, view);
        if (view.state !== before || this.opts.json) {
          this.emit(
            {
              event: 'proof',
              scene,
              component: row.component,
              ok: view.state === 'ok',
              ms: view.ms,
              result: view.result,
              live: true,
            },
            `lab: ${scene} · ${row.component} is now ${view.state === 'ok' ? 'ok' : 'FAILING'}: ${view.result ?? ''}`,
          );
        }
      }
    }
  }

  /** Tears down, reports what is left; 1 when something failed or was left. */
  private async tearDown(): Promise<number> {
    const wasLive = this.live;
    this.leaveLive();
    if (wasLive && this.checks.length > 0) {
      // The table is gone with the alternate screen: what it last said, in one line.
      const failing = this.checks
        .filter((c) => c.view.state === 'failed')
        .map((c) => `${c.scene} · ${c.row.component}`);
      this.emit(
        { event: 'final', failing },
        `lab: ran ${formatMs(this.now() - this.startedAt)}; ${this.checks.length - failing.length} of ${this.checks.length} proofs ok at the end${failing.length ? `; failing: ${failing.join(', ')}` : ''}`,
      );
    }
    const started = this.now();
    const steps = this.teardown.pending;
    this.progress('teardown', `tearing down (${steps} steps)`);
    const failures = await this.teardown.run();
    if (this.footerTimer) clearInterval(this.footerTimer);
    this.footerTimer = undefined;
    const left = await this.deps.leftovers().catch((e: unknown) => [`cannot check: ${errorMessage(e)}`]);
    for (const c of this.leftoverChecks) {
      try {
        left.push(...(await c.left()).map((l) => `${c.what}: ${l}`));
      } catch (e) {
        left.push(`${c.what}: cannot check: ${errorMessage(e)}`);
      }
    }
    const ms = this.now() - started;
    const clean = failures.length === 0 && left.length === 0;
    this.emit(
      { event: 'teardown', ms, failures, left },
      clean
        ? `lab: torn down in ${formatMs(ms)}; nothing left behind (network namespaces, processes, temp dirs, ${this.opts.shownDir})`
        : red(
            this.io.color,
            `lab: teardown in ${formatMs(ms)} ${failures.length ? `failed: ${failures.join('; ')}` : ''}${left.length ? ` left behind: ${left.join(', ')}` : ''}`,
          ),
    );
    return clean ? 0 : 1;
  }

  /** Wraps a promise so Ctrl-C stops waiting for it (the build itself cleans up after itself). */
  private abortable<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(new Error('interrupted'));
      if (this.deps.signal.aborted) onAbort();
      this.deps.signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => this.deps.signal.removeEventListener('abort', onAbort));
    });
  }

  // ---- screen

  private progress(phase: string, line: string): void {
    if (this.opts.json) {
      this.io.write(`${JSON.stringify({ event: 'progress', phase, line })}\n`);
      return;
    }
    if (line !== this.footer) this.footerSince = this.now();
    this.footer = line;
    if (this.live) this.redraw();
    else if (this.fancy) {
      this.drawFooter();
      this.footerTimer ??= setInterval(() => {
        if (!this.live && this.footer) this.drawFooter();
      }, 250);
      this.footerTimer.unref();
    } else this.io.write(`lab: ${line}\n`);
  }

  private drawFooter(): void {
    const line = `${SPINNER[Math.floor(this.now() / 250) % SPINNER.length]} ${this.footer} (${formatMs(this.now() - this.footerSince)})`;
    this.io.write(`\r\x1b[K${line.slice(0, Math.max(10, this.io.columns() - 1))}`);
  }

  private clearFooter(): void {
    if (this.fancy && this.footer && !this.live) this.io.write('\r\x1b[K');
  }

  private enterLive(): void {
    if (this.live) return;
    // The table's rows come from the scenes already up; later ones are added as they come up.
    this.live = true;
    this.io.write('\x1b[?1049h\x1b[?25l');
    this.redrawTimer = setInterval(() => this.redraw(), 1000);
    this.redrawTimer.unref();
  }

  private leaveLive(): void {
    if (this.redrawTimer) clearInterval(this.redrawTimer);
    this.redrawTimer = undefined;
    if (this.live) {
      this.live = false;
      this.io.write('\x1b[?25h\x1b[?1049l');
    }
    this.clearFooter();
  }

  private table(): string[] {
    return renderTable({
      scenes: this.views,
      startedAt: this.startedAt,
      now: this.now(),
      refreshMs: this.opts.refreshMs,
      envFile: `${this.opts.shownDir}/env`,
      columns: this.io.columns(),
      color: this.io.color && this.live,
    });
  }

  private redraw(): void {
    if (!this.live) return;
    const lines = this.table();
    if (this.footer) {
      lines.push(
        `${SPINNER[Math.floor(this.now() / 250) % SPINNER.length]} ${this.footer} (${formatMs(this.now() - this.footerSince)})`,
      );
    }
    this.io.write(`\x1b[H\x1b[2J${lines.join('\n')}\n`);
  }
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** Removes the lab folder's contents and the folder (it holds only what the lab wrote). */
function removeLabFolder(dir: string): void {
  for (const e of readdirSafe(dir)) rmSync(join(dir, e), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Sleeps; true when `signal` aborted it. */
function sleepMs(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(true);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(true);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export { LabRefusal };
