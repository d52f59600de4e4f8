// The systemd unit as systemd reads it: `systemd-analyze verify` finds nothing to say about it (an
// unknown directive or a value it cannot parse is only a warning there, so any output fails), its
// sandbox scores OK in `systemd-analyze security`, and systemd waits longer for a stop than a drain may
// take, so its SIGKILL never cuts one.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../../shared/config.js';
import { projectRoot } from '../../shared/paths.js';

const unitPath = `${projectRoot()}/ops/systemd/semantic.service`;
const unit = readFileSync(unitPath, 'utf8');
const hasSystemd = spawnSync('systemd-analyze', ['--version']).status === 0;
const noSystemd = hasSystemd ? false : 'systemd-analyze is not installed (Debian: the systemd package)';

/** The values of a directive in the [Service] section, in order (a directive may repeat). */
function directive(name: string): string[] {
  const service = unit.slice(unit.indexOf('[Service]'), unit.indexOf('[Install]'));
  return [...service.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((match) => match[1] ?? '');
}

t.test('systemd-analyze verify: exit 0 and no output', { skip: noSystemd }, async (t) => {
  const run = spawnSync('systemd-analyze', ['verify', unitPath], { encoding: 'utf8' });
  t.same({ status: run.status, output: run.stdout + run.stderr }, { status: 0, output: '' });
});

t.test('systemd-analyze security: the sandbox scores OK (exposure at most 2.0 of 10)', { skip: noSystemd }, async (t) => {
  const run = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', unitPath], { encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  const score = /Overall exposure level for semantic\.service: ([\d.]+) (\w+)/.exec(run.stdout);
  t.ok(score, 'the overall exposure line is printed');
  t.ok(Number(score?.[1]) <= 2, `exposure ${score?.[1]} ${score?.[2]}`);
});

t.test('TimeoutStopSec exceeds the drain timeout by a margin; SIGTERM starts the drain', async (t) => {
  const drainTimeout = loadConfig().drainTimeout;
  t.equal(drainTimeout, 30, 'the default drain timeout, which the unit relies on (config.json does not set one)');
  t.same(directive('TimeoutStopSec'), ['45']);
  t.ok(Number(directive('TimeoutStopSec')[0]) >= drainTimeout + 10, 'at least 10 s of margin');
  t.same(directive('KillSignal'), ['SIGTERM']);
  t.same(directive('KillMode'), ['mixed']);
  t.same(directive('Restart'), ['on-failure']);
});

t.test('the hardening the unit promises is there, and the JIT-breaking setting is not', async (t) => {
  const expected: Record<string, string> = {
    ProtectSystem: 'strict',
    ProtectHome: 'true',
    PrivateTmp: 'true',
    NoNewPrivileges: 'true',
    CapabilityBoundingSet: '',
    RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
    SystemCallFilter: '@system-service',
    SystemCallErrorNumber: 'EPERM',
    ReadWritePaths: '/var/cache/semantic /var/log/semantic',
    CacheDirectory: 'semantic',
    LogsDirectory: 'semantic',
  };
  for (const [name, value] of Object.entries(expected)) t.same(directive(name), [value], name);
  t.same(directive('MemoryDenyWriteExecute'), [], "off: V8's JIT needs writable executable memory");
  t.same(directive('Environment'), ['XDG_CACHE_HOME=/var/cache'], 'the default cache dir is /var/cache/semantic/agents, inside ReadWritePaths');
});
