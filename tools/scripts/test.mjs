#!/usr/bin/env node
// `npm test`: every check of every project, then one grand total.
//  1. builds (or finds cached) test-bed binaries, so no test times out building them;
//  2. prettier --check, then typecheck + lint of all projects (Nx, inferred targets);
//  3. jest of all projects, one project at a time (integration tests start real control planes
//     and network namespaces; two at once on 2 cores only makes both slower);
//  4. prints "N passed, N failed, N skipped" from tools/jest/totals-reporter.cjs. Skipped or
//     focused tests fail the run: a skipped test is not a passing one.
// Extra arguments go to the jest step's Nx call, e.g. `npm test -- -p @knet/k8s`.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = (n) => join(root, 'node_modules', '.bin', n);
const extra = process.argv.slice(2);
const totalsDir = join(root, 'tmp', 'test-totals');

function step(title, cmd, args) {
  console.log(`\n=== ${title}: ${[cmd.replace(root + '/', ''), ...args].join(' ')}`);
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    `=== ${title}: ${r.status === 0 ? 'ok' : `FAILED (exit ${r.status ?? r.signal})`} in ${secs} s`,
  );
  return r.status === 0;
}

if (!existsSync(bin('nx'))) {
  console.error("test: node_modules is missing; run 'npm run setup' (or 'npm ci') first");
  process.exit(2);
}
rmSync(totalsDir, { recursive: true, force: true });

const results = [];
results.push(step('test bed', bin('tsx'), ['libs/testing/src/cli.ts', 'build']));
const nx = ['run-many', '--outputStyle=static', '--skipNxCache'];
if (results[0]) {
  results.push(step('format', bin('prettier'), ['--check', '--log-level=warn', '.']));
  results.push(step('typecheck + lint', bin('nx'), [...nx, '-t', 'typecheck', 'lint', '--parallel=2']));
  results.push(step('tests', bin('nx'), [...nx, '-t', 'test', '--parallel=1', ...extra]));
}

let passed = 0;
let failed = 0;
let skipped = 0;
let suitesFailed = 0;
const files = existsSync(totalsDir) ? readdirSync(totalsDir).sort() : [];
const failures = [];
console.log('\n=== totals per project');
for (const f of files) {
  const t = JSON.parse(readFileSync(join(totalsDir, f), 'utf8'));
  failures.push(...(t.failures ?? []));
  passed += t.passed;
  failed += t.failed;
  skipped += t.skipped;
  suitesFailed += t.suitesFailed;
  const took = t.seconds === undefined ? '' : ` in ${t.seconds.toFixed(1)} s`;
  console.log(`${t.project.padEnd(28)} ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped${took}`);
}
if (failures.length > 0) {
  // Repeated here because jest printed them minutes (and thousands of lines) ago.
  console.log('\n=== what failed');
  for (const x of failures) console.log(`\n✕ ${x.test}\n${x.message.replace(/^/gm, '    ')}`);
}
const ok = results.every(Boolean) && failed === 0 && suitesFailed === 0 && skipped === 0 && passed > 0;
if (skipped > 0) console.log(`test: ${skipped} skipped/todo test(s); skipped tests are not allowed`);
if (suitesFailed > 0)
  console.log(`test: ${suitesFailed} test file(s) failed (a failing test, or the file itself failed to run)`);
if (passed === 0) console.log('test: no test ran');
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(ok ? 0 : 1);
