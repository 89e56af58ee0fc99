/**
 * `npm run lab`: wiring only — options (flags, KNET_LAB_* env), the scenes, the machine's real
 * parts (test bed binaries, app bundles, signals, what is left after teardown) → runLab.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { CleanExit, parseOptions, runMain } from '@knet/runtime';
import { appBundle, ensureTestBedBinaries, findTestBedBinaries, workspaceRoot } from '@knet/testing';
import { leftovers } from './leftovers';
import { checkMachine } from './preflight';
import { program } from './options';
import { runLab } from './runner';
import { allScenes } from './scene';
import './scenes';

/** The lab's own exit code (1: a proof failed or something was left; 130: interrupted while starting). */
let labCode = 0;

void runMain(
  'lab',
  async () => {
    const opts = parseOptions(program);
    const scenes = allScenes({ withNode: opts.withNode });
    if (opts.list) {
      for (const s of scenes) {
        const needs = s.needs.length ? ` (needs ${s.needs.join(', ')})` : '';
        process.stdout.write(`${s.name.padEnd(12)} ${s.title}${needs}\n`);
      }
      throw new CleanExit();
    }
    const root = workspaceRoot();
    const dir = isAbsolute(opts.dir) ? opts.dir : join(root, opts.dir);
    const shown = relative(root, dir);
    const shownDir = shown === '' || shown.startsWith('..') ? dir : shown;

    const interrupt = new AbortController();
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals === 1) interrupt.abort();
      else
        process.stderr.write(
          `lab: ${sig} again: still tearing down, so nothing is left behind; please wait\n`,
        );
    };
    // SIGHUP: the terminal went away; tear down all the same.
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);

    // Every temp dir of this run (control planes, the pod-gateway world, the webhook, the apps'
    // own) goes to one folder, so the teardown can tell what this run left behind.
    const machineTmpDir = tmpdir();
    const tmp = mkdtempSync(join(machineTmpDir, `knet-lab-${process.pid}-`));
    process.env['TMPDIR'] = tmp;
    process.once('exit', () => rmSync(tmp, { recursive: true, force: true }));

    const code = await runLab(
      { ...opts, dir, shownDir, refreshMs: opts.refresh },
      {
        write: (t) => process.stdout.write(t),
        isTTY: process.stdout.isTTY === true,
        columns: () => process.stdout.columns ?? 100,
        color: process.stdout.isTTY === true && !process.env['NO_COLOR'],
      },
      {
        scenes,
        machine: () => checkMachine(),
        binariesCached: () => findTestBedBinaries() !== undefined,
        binaries: async (log) => {
          const cached = findTestBedBinaries() !== undefined;
          const bin = await ensureTestBedBinaries(log, { progressEveryMs: 5_000 });
          return { kubectl: bin.kubectl, cached };
        },
        bundle: (app) => appBundle(app),
        signal: interrupt.signal,
        machineTmpDir,
        leftovers: () => leftovers(process.pid, tmp),
      },
    );
    labCode = code;
  },
  { exit: (code) => process.exit(code === 0 ? labCode : code) },
);
