/**
 * What the lab prints, as pure functions of its state (golden-tested in display.spec.ts): the
 * proof lines of `--check`, the live table, and durations.
 */

export type RowState = 'pending' | 'checking' | 'ok' | 'failed';

export interface RowView {
  component: string;
  proof: string;
  command: string;
  live: boolean;
  state: RowState;
  /** The check's one-line result, or its error. */
  result?: string;
  /** How long the last check took. */
  ms?: number;
  /** When the last check finished (epoch ms). */
  at?: number;
}

export interface SceneView {
  name: string;
  title: string;
  state: 'waiting' | 'starting' | 'up' | 'failed';
  /** How long it took to come up. */
  upMs?: number;
  /** Why it failed to come up. */
  error?: string;
  rows: RowView[];
}

export interface TableView {
  scenes: readonly SceneView[];
  startedAt: number;
  now: number;
  refreshMs: number;
  /** `.lab/env`: sourced, it puts the test bed's kubectl and helm on PATH. */
  envFile: string;
  columns: number;
  color: boolean;
}

const ESC = '\x1b[';
const paint = (on: boolean, code: string, s: string) => (on ? `${ESC}${code}m${s}${ESC}0m` : s);
export const green = (on: boolean, s: string) => paint(on, '32', s);
export const red = (on: boolean, s: string) => paint(on, '31', s);
export const dim = (on: boolean, s: string) => paint(on, '2', s);
export const bold = (on: boolean, s: string) => paint(on, '1', s);

/** 412 ms, 3.1 s, 2m13s, 1h02m. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** How long ago, in whole seconds: `just now`, `12 s ago`, `3m05s ago`. */
export function formatAge(ms: number): string {
  if (ms < 1000) return 'just now';
  if (ms < 60_000) return `${Math.floor(ms / 1000)} s ago`;
  return `${formatMs(ms)} ago`;
}

/** `text` cut to `width` visible characters, with … when cut. */
export function clip(text: string, width: number): string {
  const flat = text.replace(/\s*\n\s*/g, ' ');
  if (width <= 0) return '';
  return flat.length <= width ? flat : `${flat.slice(0, Math.max(0, width - 1))}…`;
}

const MARK: Record<RowState, string> = { pending: '·', checking: '…', ok: '✓', failed: '✗' };

function mark(state: RowState, color: boolean): string {
  const m = MARK[state];
  return state === 'ok' ? green(color, m) : state === 'failed' ? red(color, m) : m;
}

/** `--check`'s line for one proof: `  ✓ host cluster: ready; 4 namespaces (84 ms)` and its command. */
export function formatProofLines(scene: string, row: RowView, color: boolean): string[] {
  const took = row.ms === undefined ? '' : ` (${formatMs(row.ms)})`;
  return [
    `  ${mark(row.state, color)} ${scene} · ${row.component}: ${row.result ?? ''}${took}`,
    dim(color, `      proves: ${row.proof}`),
    dim(color, `      try:    ${row.command}`),
  ];
}

/**
 * The live table: a header, then per scene a heading and two lines per row (mark, component,
 * result and age; then the command to try), each cut to the terminal's width.
 */
export function renderTable(v: TableView): string[] {
  const { color, columns } = v;
  const rows = v.scenes.flatMap((s) => s.rows);
  const ok = rows.filter((r) => r.state === 'ok').length;
  const failed = rows.filter((r) => r.state === 'failed').length;
  const counts = `${ok} ok${failed ? `, ${red(color, `${failed} failing`)}` : ''}`;
  const lines = [
    bold(color, `knet lab`) +
      ` · up ${formatMs(v.now - v.startedAt)} · ${counts} · live proofs re-run every ${Math.round(v.refreshMs / 1000)} s · ${bold(color, 'Ctrl-C')} tears it all down`,
    dim(color, `kubectl and helm here are the test bed's: source ${v.envFile} to have them on your PATH`),
    '',
  ];
  const width = Math.max(40, columns);
  const nameWidth = Math.min(24, Math.max(...rows.map((r) => r.component.length), 10));
  for (const s of v.scenes) {
    const state =
      s.state === 'up'
        ? `up in ${formatMs(s.upMs ?? 0)}`
        : s.state === 'failed'
          ? red(color, `failed: ${s.error ?? ''}`)
          : s.state;
    lines.push(clip(`── ${s.name}: ${s.title}`, width - state.length - 4) + ` · ${state}`);
    for (const r of s.rows) {
      const age = r.at === undefined ? '' : ` · ${formatMs(r.ms ?? 0)} · ${formatAge(v.now - r.at)}`;
      const suffix = `${r.live ? '' : ' · once'}${age}`;
      const head = ` ${mark(r.state, color)} ${r.component.padEnd(nameWidth)}  `;
      const headWidth = 5 + nameWidth;
      const result = clip(
        r.result ?? (r.state === 'checking' ? 'checking…' : ''),
        width - headWidth - suffix.length,
      );
      const shown = r.state === 'failed' ? red(color, result) : result;
      lines.push(`${head}${shown}${dim(color, suffix)}`);
      lines.push(dim(color, clip(`${' '.repeat(headWidth)}$ ${r.command}`, width)));
    }
    lines.push('');
  }
  return lines;
}
