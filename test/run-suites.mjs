// `npm test`'s last part: the unit, model and process suites in that order (the addon-free unit tests
// first, so a logic error shows in seconds), each its own tap run with this script's arguments (.ci/run
// passes --reporter=tap). Every suite runs even when an earlier one failed; the exit status is 1 if
// any did. Each test file belongs to exactly one suite, so the TAP output names each file once.
import { spawnSync } from 'node:child_process';

const suites = ['unit', 'model', 'process'];
const failed = suites.filter((suite) => spawnSync('npm', ['run', `test:${suite}`, '--', ...process.argv.slice(2)], { stdio: 'inherit' }).status !== 0);
if (failed.length > 0) {
  console.error(`test suites that failed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
