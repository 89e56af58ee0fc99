#!/usr/bin/env node
// `npm run typecheck`: every project's TypeScript in one program, instead of one `tsc --build`
// per project (Nx's inferred `typecheck` target, still there for `nx typecheck <project>`).
// Each project's tsconfig.json has no project references, so per project tsc checks again the
// source of every lib it imports: 36 programs took ~200 s of CPU, the single program ~20 s.
//
// The single program is the same check only while every project's tsconfig.json adds nothing to
// tsconfig.base.json but its output paths and `types`, and includes only what it covers. This
// script refuses (one line, exit 2) when a project's tsconfig sets anything else, so a new option
// is never silently not checked.
//  - tsconfig.json: projects with `types: ["node", "jest"]` (and, as a superset, the others);
//  - tsconfig.node-only.json: projects with `types: ["node"]`, so jest's globals stay unknown there.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const OUTPUT_ONLY = new Set(['outDir', 'tsBuildInfoFile', 'declaration', 'emitDeclarationOnly', 'types']);
const BOTH = JSON.stringify(['node', 'jest']);
const NODE = JSON.stringify(['node']);
// What tools/typecheck/tsconfig.json takes of a project, by its folder (a project's own include may
// be any of these, never more).
const COVERED = {
  apps: ['src/**/*.ts', 'test/**/*.ts'],
  libs: ['src/**/*.ts', 'test/**/*.ts'],
  e2e: ['src/**/*.ts', 'test/**/*.ts'],
  bench: ['**/*.ts', '*.ts'],
};

function fail(message) {
  console.error(`typecheck: ${message}`);
  process.exit(2);
}

const nodeOnly = JSON.parse(readFileSync(join(here, 'tsconfig.node-only.json'), 'utf8')).include.map((p) =>
  p.replace(/^\.\.\/\.\.\//, '').replace(/\/\*\.ts$/, ''),
);
for (const group of ['apps', 'libs', 'e2e', 'bench']) {
  if (!existsSync(join(root, group))) continue;
  for (const name of readdirSync(join(root, group)).sort()) {
    const file = join(group, name, 'tsconfig.json');
    if (!existsSync(join(root, file))) continue;
    let config;
    try {
      config = JSON.parse(readFileSync(join(root, file), 'utf8'));
    } catch (e) {
      fail(
        `${file} is not plain JSON (${e.message}); tools/typecheck/run.mjs reads it to check it adds no compiler option`,
      );
    }
    const options = config.compilerOptions ?? {};
    const extra = Object.keys(options).filter((k) => !OUTPUT_ONLY.has(k));
    if (config.extends !== '../../tsconfig.base.json' || extra.length > 0) {
      fail(
        `${file} ${extra.length > 0 ? `sets compilerOptions ${extra.join(', ')}` : `extends ${config.extends}`}, which the single-program typecheck does not apply: move it to tsconfig.base.json, or give the project its own program in tools/typecheck`,
      );
    }
    const dir = `${group}/${name}`;
    const outside = (config.include ?? []).filter((p) => !COVERED[group].includes(p));
    if (outside.length > 0) {
      fail(
        `${file} includes ${outside.join(', ')}, which tools/typecheck/tsconfig.json does not cover (it takes ${COVERED[group].join(', ')} of each ${group}/ project): add the pattern there`,
      );
    }
    const types = JSON.stringify(options.types ?? []);
    if (types === NODE && !nodeOnly.includes(dir)) {
      fail(
        `${file} has types ["node"] but is not in tools/typecheck/tsconfig.node-only.json's include: add "../../${dir}/*.ts" there`,
      );
    }
    if (types !== NODE && types !== BOTH) {
      fail(
        `${file} has types ${types}; tools/typecheck knows ["node", "jest"] and ["node"]: add a program for it there`,
      );
    }
  }
}

let status = 0;
for (const program of ['tsconfig.json', 'tsconfig.node-only.json']) {
  const started = Date.now();
  const r = spawnSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(here, program)], {
    cwd: root,
    stdio: 'inherit',
  });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    `typecheck: tools/typecheck/${program} ${r.status === 0 ? 'ok' : `FAILED (exit ${r.status ?? r.signal})`} in ${secs} s`,
  );
  if (r.status !== 0) status = 1;
}
process.exit(status);
