#!/usr/bin/env node
// `npm test`: every check of every project, then one grand total.
//  1. builds (or finds cached) the test bed's control plane, which every system test needs;
//  2. two lanes side by side (2 cores; the system tests wait on real daemons, control planes and
//     kernels for most of their time and use under one core, measured: e2e/tower 194 s of wall
//     time for 152 s of CPU):
//     - system: jest of the projects that start test beds, nodes and the lab (tags type:e2e and
//       type:testing), one project at a time, its output live;
//     - checks: the rest of the test bed (the node's binaries, Cluster API's managers and kubeadm)
//       and the images, so no test times out building them; prettier --check; the typecheck
//       (tools/typecheck: every project in one program); lint (Nx, inferred targets); then jest
//       of every other project, one at a time. Its output goes to tmp/test-checks.log and is
//       printed after the system lane, with a line per step live.
//     KNET_TEST_LANES=1 runs the same steps one after another instead.
//  3. prints "N passed, N failed, N skipped" from tools/jest/totals-reporter.cjs. Skipped or
//     focused tests fail the run: a skipped test is not a passing one.
// Extra arguments go to one jest call over Nx after the checks, e.g. `npm test -- -p @knet/k8s`.
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = (n) => join(root, 'node_modules', '.bin', n);
const extra = process.argv.slice(2);
const totalsDir = join(root, 'tmp', 'test-totals');
const checksLog = join(root, 'tmp', 'test-checks.log');
const SYSTEM_TAGS = ['type:e2e', 'type:testing'];
// System projects that need the node's binaries and the images: they run last in their lane, so
// the checks lane has built both by then (the test bed's locks make any other order correct too).
const SYSTEM_LAST = ['@knet/testing', '@knet/e2e-node', '@knet/lab'];

/** Runs one step; `out` is 'inherit' or a file descriptor (then a one-line verdict also goes to stdout). */
function step(title, cmd, args, out = 'inherit') {
  const head = `\n=== ${title}: ${[cmd.replace(root + '/', ''), ...args].join(' ')}\n`;
  if (out === 'inherit') process.stdout.write(head);
  else writeFd(out, head);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', out, out], env: process.env });
    child.on('error', (e) => finish(`FAILED (${e.message})`, false));
    child.on('exit', (code, signal) =>
      finish(code === 0 ? 'ok' : `FAILED (exit ${code ?? signal})`, code === 0),
    );
    function finish(verdict, ok) {
      const line = `=== ${title}: ${verdict} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`;
      if (out !== 'inherit') writeFd(out, line);
      process.stdout.write(out === 'inherit' ? line : `=== [beside] ${line.slice(4)}`);
      resolve(ok);
    }
  });
}

function writeFd(fd, text) {
  // Appending through the same descriptor the children write to keeps the log in order.
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off);
}

/** Projects with a jest config, split by their Nx tags. */
function projects() {
  const system = [];
  const others = [];
  for (const group of ['apps', 'libs', 'e2e']) {
    for (const name of readdirSync(join(root, group)).sort()) {
      const dir = join(root, group, name);
      if (!existsSync(join(dir, 'jest.config.cjs')) || !existsSync(join(dir, 'package.json'))) continue;
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      const tags = pkg.nx?.tags ?? [];
      (tags.some((t) => SYSTEM_TAGS.includes(t)) ? system : others).push(pkg.name);
    }
  }
  const rank = (p) => SYSTEM_LAST.indexOf(p);
  system.sort((a, b) => rank(a) - rank(b));
  return { system, others };
}

if (!existsSync(bin('nx'))) {
  console.error("test: node_modules is missing; run 'npm run setup' (or 'npm ci') first");
  process.exit(2);
}
rmSync(totalsDir, { recursive: true, force: true });
mkdirSync(dirname(checksLog), { recursive: true });

const nx = ['run-many', '--outputStyle=static', '--skipNxCache'];
const format = (out) => step('format', bin('prettier'), ['--check', '--log-level=warn', '.'], out);
const typecheck = (out) => step('typecheck', process.execPath, ['tools/typecheck/run.mjs'], out);
const lint = (out) => step('lint', bin('nx'), [...nx, '-t', 'lint', '--parallel=2'], out);
const jest = (title, args, out) =>
  step(title, bin('nx'), [...nx, '-t', 'test', '--parallel=1', ...args], out);

const testbed = (parts, out) =>
  step(`test bed (${parts.join(', ')})`, bin('tsx'), ['libs/testing/src/cli.ts', 'build', ...parts], out);
const images = (out) => step('images', bin('tsx'), ['libs/testing/src/images/cli.ts', '--no-checks'], out);

const results = [await testbed(['control-plane'], 'inherit')];
if (results[0]) {
  if (extra.length > 0 || process.env.KNET_TEST_LANES === '1') {
    results.push(await testbed(['node', 'capi'], 'inherit'));
    for (const s of [format, typecheck, lint]) results.push(await s('inherit'));
    results.push(await jest('tests', extra, 'inherit'));
  } else {
    const { system, others } = projects();
    const fd = openSync(checksLog, 'w');
    console.log(
      `\n=== two lanes: system tests here; checks and other tests beside them, into ${checksLog.replace(root + '/', '')}`,
    );
    const checks = (async () => {
      // In the order the system lane needs them: node and images (libs/testing, e2e/node), then
      // Cluster API (the lab, last there; capi-packet-manager, late here).
      const r = [await testbed(['node'], fd), await images(fd), await testbed(['capi'], fd)];
      r.push(await format(fd), await typecheck(fd), await lint(fd));
      r.push(await jest('tests (others)', ['-p', others.join(',')], fd));
      return r;
    })();
    let systemOk = true;
    for (const p of system) systemOk = (await jest(`tests ${p}`, ['-p', p], 'inherit')) && systemOk;
    const checksOk = await checks;
    closeSync(fd);
    console.log(`\n=== the checks lane's output (${checksLog.replace(root + '/', '')})`);
    process.stdout.write(readFileSync(checksLog, 'utf8'));
    results.push(systemOk, ...checksOk);
  }
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
if (!results.every(Boolean)) console.log('test: a step failed (see its === line above)');
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(ok ? 0 : 1);
