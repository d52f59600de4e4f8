// Stored responses on real files in a temp dir: readable at once, on disk once written, found again by
// a store opened on the same dir (a restart), least recently used dropped beyond the budget, deletes
// telling whether the agent has another stored response; without a dir, memory only.
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResponseObject } from '../../worker/api/responses/bodies.js';
import { ResponseStore, type StoredResponse } from '../../worker/api/responses/store.js';

const record = (id: string, agentId: string, text = 'x'): StoredResponse => ({
  response: { id, object: 'response' } as ResponseObject,
  agentId,
  history: [{ role: 'user', content: text }],
});
const bytesOf = (stored: StoredResponse): number => Buffer.byteLength(JSON.stringify(stored));

t.test('a record is readable at once, written to a file, and found again after a restart', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'responses-store-')), 'responses');
  const store = await ResponseStore.open(dir, 1 << 20);
  const first = record('resp_a1', 'resp_a1');
  const { written } = store.put(first);
  t.same(await store.get('resp_a1'), first, 'from memory before the write lands');
  await written;
  t.same(readdirSync(dir), ['resp_a1.json']);
  writeFileSync(join(dir, 'resp_junk.json'), '{not json');
  writeFileSync(join(dir, 'resp_other.json'), JSON.stringify(record('resp_not_other', 'a')));
  writeFileSync(join(dir, 'notes.txt'), 'ignored');
  const restarted = await ResponseStore.open(dir, 1 << 20);
  t.same(await restarted.get('resp_a1'), first);
  t.equal(restarted.bytes, bytesOf(first), 'only the readable record is counted');
  t.equal(await restarted.get('resp_none'), undefined);
  t.equal(await restarted.get('resp_other'), undefined, 'a file whose record names another id is no record');
  t.equal(await restarted.get('../etc/passwd'), undefined, 'an id that is not storable never reaches the file system');
});

t.test('beyond the budget the least recently used records go, never the newest', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'responses-store-'));
  const size = bytesOf(record('resp_b1', 'a'));
  const store = await ResponseStore.open(dir, size * 2);
  await store.put(record('resp_b1', 'a')).written;
  await store.put(record('resp_b2', 'a')).written;
  await store.get('resp_b1'); // b2 is now the least recently used
  await store.put(record('resp_b3', 'a')).written;
  t.ok(await store.get('resp_b1'));
  t.equal(await store.get('resp_b2'), undefined);
  t.ok(await store.get('resp_b3'));
  t.notOk(existsSync(join(dir, 'resp_b2.json')), 'its file deleted');
  const tiny = await ResponseStore.open(undefined, 1);
  tiny.put(record('resp_c1', 'a'));
  t.ok(await tiny.get('resp_c1'), 'a record over the whole budget still stays while it is the newest');
});

t.test('delete says whether another stored response of the agent remains; memory only without a dir', async (t) => {
  const store = await ResponseStore.open(undefined, 1 << 20);
  store.put(record('resp_d1', 'chain-1'));
  store.put(record('resp_d2', 'chain-1'));
  store.put(record('resp_d3', 'chain-2'));
  t.match(await store.delete('resp_d1'), { record: { agentId: 'chain-1' }, agentStillStored: true });
  t.match(await store.delete('resp_d2'), { agentStillStored: false });
  t.equal(await store.delete('resp_d2'), undefined, 'gone');
  t.ok(await store.get('resp_d3'));
});
