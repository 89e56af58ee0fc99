// Writes each project's test counts to tmp/test-totals/<project>.json so that `npm test`
// can print one grand total after Nx has run every project.
const fs = require('node:fs');
const path = require('node:path');

class TotalsReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
  }

  onRunComplete(_contexts, results) {
    const workspace = path.resolve(__dirname, '..', '..');
    const dir = path.join(workspace, 'tmp', 'test-totals');
    fs.mkdirSync(dir, { recursive: true });
    const name = path.relative(workspace, this.rootDir).replace(/[\\/]/g, '__') || 'root';
    const totals = {
      project: path.relative(workspace, this.rootDir),
      passed: results.numPassedTests,
      failed: results.numFailedTests,
      skipped: results.numPendingTests + results.numTodoTests,
      suitesFailed: results.numFailedTestSuites + results.numRuntimeErrorTestSuites,
    };
    fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(totals) + '\n');
  }
}

module.exports = TotalsReporter;
