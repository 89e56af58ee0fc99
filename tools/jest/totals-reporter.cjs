// Writes each project's test counts to tmp/test-totals/<project>.json so that `npm test`
// can print one grand total after Nx has run every project. It also keeps the names and the
// first lines of each failure, so the end of a long CI log says what failed and why.
const fs = require('node:fs');
const path = require('node:path');

const MAX_FAILURES = 20;
const MESSAGE_LINES = 12;

// ANSI colour codes make no sense in the summary file.
// eslint-disable-next-line no-control-regex
const plain = (s) => s.replace(/\u001b\[[0-9;]*m/g, '');

function firstLines(text) {
  return plain(text)
    .split('\n')
    .filter((l) => !/^\s+at .*(node_modules|node:internal|<anonymous>)/.test(l))
    .slice(0, MESSAGE_LINES)
    .join('\n');
}

class TotalsReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
  }

  onRunComplete(_contexts, results) {
    const workspace = path.resolve(__dirname, '..', '..');
    const dir = path.join(workspace, 'tmp', 'test-totals');
    fs.mkdirSync(dir, { recursive: true });
    const name = path.relative(workspace, this.rootDir).replace(/[\\/]/g, '__') || 'root';
    const failures = [];
    for (const file of results.testResults) {
      const where = path.relative(workspace, file.testFilePath);
      if (file.testExecError || (file.failureMessage && file.numFailingTests === 0)) {
        failures.push({
          test: `${where} (the file failed to run)`,
          message: firstLines(file.failureMessage || String(file.testExecError.message)),
        });
      }
      for (const t of file.testResults) {
        if (t.status !== 'failed') continue;
        failures.push({
          test: `${where} › ${t.fullName} (${t.duration ?? '?'} ms)`,
          message: firstLines(t.failureMessages.join('\n')),
        });
      }
    }
    const totals = {
      project: path.relative(workspace, this.rootDir),
      passed: results.numPassedTests,
      failed: results.numFailedTests,
      skipped: results.numPendingTests + results.numTodoTests,
      suitesFailed: results.numFailedTestSuites + results.numRuntimeErrorTestSuites,
      seconds: Math.round((Date.now() - results.startTime) / 100) / 10,
      failures: failures.slice(0, MAX_FAILURES),
    };
    fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(totals) + '\n');
  }
}

module.exports = TotalsReporter;
