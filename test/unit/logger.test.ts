// Log lines are one JSON object each, carry the writing process's pid and role, let a line about
// another process name its pid, and never contain an API key wherever in the logged object it sits.
import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger, logFileSettings, redactionCensor, workerLogFile } from '../../shared/logger.js';

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { lines, stream };
}

t.test('base fields: pid and role on every line; a line may name another pid', async (t) => {
  const { lines, stream } = capture();
  const logger = createLogger('supervisor', 'info', stream);
  logger.info('plain');
  logger.info({ pid: 4242, worker: 0 }, 'worker ready');
  logger.debug('below the level');
  t.match(lines, [
    { pid: process.pid, role: 'supervisor', msg: 'plain', level: 30 },
    { pid: 4242, role: 'supervisor', msg: 'worker ready', worker: 0 },
  ]);
  t.equal(lines.length, 2);
});

t.test('secrets are redacted at the top level and in nested headers and configs', async (t) => {
  const { lines, stream } = capture();
  const logger = createLogger('worker', 'info', stream);
  logger.info(
    {
      authorization: 'Bearer top',
      'x-api-key': 'top-key',
      apiKey: 'k0',
      req: { headers: { authorization: 'Bearer sk-123', 'x-api-key': 'sk-456', 'content-type': 'application/json' } },
      config: { apiKey: 'sk-789' },
    },
    'request',
  );
  const text = JSON.stringify(lines);
  for (const secret of ['Bearer top', 'top-key', 'k0', 'sk-123', 'sk-456', 'sk-789']) t.notOk(text.includes(secret), `${secret} is not logged`);
  t.match(lines[0], {
    authorization: redactionCensor,
    'x-api-key': redactionCensor,
    apiKey: redactionCensor,
    req: { headers: { authorization: redactionCensor, 'x-api-key': redactionCensor, 'content-type': 'application/json' } },
    config: { apiKey: redactionCensor },
  });
});

t.test('log files: each process of a supervised fleet has a name of its own, with an extension pino-roll numbers before', async (t) => {
  t.equal(workerLogFile('/var/log/semantic/semantic.log', 0, 0), '/var/log/semantic/semantic.worker-0.log');
  t.equal(workerLogFile('/var/log/semantic/semantic.log', 3, 1), '/var/log/semantic/semantic.worker-3b.log', "a replacement beside its slot's draining worker");
  t.equal(workerLogFile('/var/log.d/semantic', 1, 0), '/var/log.d/semantic.worker-1.log', 'no extension: .log (a dot in a folder is no extension)');
  const settings = { logFileSize: '1k', logFileFrequency: 'none', logFileCount: 2 } as const;
  t.equal(logFileSettings({ logFile: undefined, ...settings }), undefined);
  t.same(logFileSettings({ logFile: 'logs/semantic', ...settings }), { path: 'logs/semantic.log', size: '1k', frequency: 'none', count: 2 });
});
