// NOTICE freshness: the committed file must equal a fresh `npm run notice` of the installed
// production tree, so a dependency change without a regenerated NOTICE fails the suite.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { runReleaseScript } from '../helpers/release-tools.js';

t.test('the committed NOTICE is what npm run notice writes now', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'semantic-notice-'));
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const fresh = join(scratch, 'NOTICE');
  const outcome = await runReleaseScript('notice', [fresh]);
  t.equal(outcome.code, 0, outcome.stderr);
  const committed = readFileSync(join(projectRoot(), 'NOTICE'), 'utf8').split('\n');
  const generated = readFileSync(fresh, 'utf8').split('\n');
  const firstDifference = generated.findIndex((line, i) => line !== committed[i]);
  const where = firstDifference === -1 ? committed.length : firstDifference;
  t.equal(
    committed.join('\n'),
    generated.join('\n'),
    `NOTICE is stale (line ${where + 1}: committed ${JSON.stringify(committed[where] ?? '<end>')}, now ${JSON.stringify(generated[where] ?? '<end>')}): run \`npm run notice\` and commit NOTICE`,
  );
  t.match(generated.join('\n'), /^llama\.cpp and ggml {2,}MIT License\nhttps:\/\/github\.com\/ggml-org\/llama\.cpp, release v\S+ \(commit [0-9a-f]{40}\)$/m);
  t.match(generated.join('\n'), /^ {2}zod \S+ +MIT$/m, 'direct dependencies are listed with their licenses');
});
