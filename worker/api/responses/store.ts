/**
 * Stored responses (`store: true`, the default): what `GET /v1/responses/{id}` returns and what a
 * follow-up turn (`previous_response_id`) rebuilds its prompt from. Each record holds the response
 * object, the agent whose cache the chain's turns extend, and the conversation so far (without the
 * instructions), so a follow-up reads one record, never the chain.
 *
 * Records are JSON files, `<cache dir>/responses/<id>.json`, beside the agents' cache files and
 * surviving restarts as they do; a record is readable at once from memory until its file is written
 * (atomically: a temp file renamed). Their bytes are held under the same byte budget as the agents'
 * files (`--disk-cache`), counted on their own, least recently used deleted first; without a disk
 * tier (budget 0) they live in memory under the RAM budget and end with the process, as agents'
 * caches do. Workers sharing the dir (`semantic supervise`) find each other's records on disk.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChatMessage } from '../../../shared/protocol/messages.js';
import type { ResponseObject } from './bodies.js';

export interface StoredResponse {
  response: ResponseObject;
  /** Whose cache every turn of the chain reads and extends. */
  agentId: string;
  /** The conversation up to and including this response's output, without instructions. */
  history: ChatMessage[];
}

interface IndexEntry {
  agentId: string;
  bytes: number;
}

/** Ids name files: nothing but OpenAI's alphabet gets near the file system. */
const storableId = /^resp_[A-Za-z0-9]{1,100}$/;
const fileSuffix = '.json';
/** A temp file this old was left by a writer that died (a write takes milliseconds). */
const staleTempMs = 60 * 60 * 1000;

/** A file edited or damaged by hand is no record rather than a 500 on the turn that reads it. */
function isRecordOf(id: string, record: Partial<StoredResponse> | null): record is StoredResponse {
  return typeof record?.agentId === 'string' && Array.isArray(record.history) && record.response?.id === id;
}

export class ResponseStore {
  /** Recency order: the Map's insertion order, a record used is re-inserted at the end. */
  private readonly index = new Map<string, IndexEntry>();
  /** Records not yet on disk (or all of them, without a dir). */
  private readonly memory = new Map<string, StoredResponse>();
  private bytesHeld = 0;

  private constructor(
    /** Undefined: memory only. */
    private readonly dir: string | undefined,
    private readonly budgetBytes: number,
  ) {}

  /** Learns the records a previous run left (and drops dead writers' temp files). */
  static async open(dir: string | undefined, budgetBytes: number): Promise<ResponseStore> {
    const store = new ResponseStore(dir, budgetBytes);
    if (dir !== undefined) await store.indexDir(dir);
    return store;
  }

  static isStorableId(id: string): boolean {
    return storableId.test(id);
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** Readable at once; on disk once the write lands (`written` resolves then). */
  put(record: StoredResponse): { written: Promise<void> } {
    const { id } = record.response;
    const text = JSON.stringify(record);
    this.memory.set(id, record);
    this.note(id, { agentId: record.agentId, bytes: Buffer.byteLength(text) });
    const written = this.dir === undefined ? Promise.resolve() : this.write(this.dir, id, text);
    return { written };
  }

  async get(id: string): Promise<StoredResponse | undefined> {
    if (!storableId.test(id)) return undefined;
    const record = this.memory.get(id) ?? (await this.read(id));
    const entry = this.index.get(id);
    if (record !== undefined && entry !== undefined) this.touch(id, entry);
    return record;
  }

  /** Forgets the record; says whether another stored response of its agent remains. */
  async delete(id: string): Promise<{ record: StoredResponse; agentStillStored: boolean } | undefined> {
    const record = await this.get(id);
    if (record === undefined) return undefined;
    await this.remove(id);
    const agentStillStored = [...this.index.values()].some((entry) => entry.agentId === record.agentId);
    return { record, agentStillStored };
  }

  /** The folder is made by the first write, so a server that stores nothing leaves none, and a read-only cache dir is no failure to start. */
  private async indexDir(dir: string): Promise<void> {
    const found: { id: string; entry: IndexEntry; mtimeMs: number }[] = [];
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, name);
      const stats = await stat(path).catch(() => undefined);
      if (stats === undefined || !stats.isFile()) continue;
      if (name.endsWith('.tmp') && Date.now() - stats.mtimeMs > staleTempMs) await rm(path, { force: true });
      const id = name.slice(0, -fileSuffix.length);
      if (!name.endsWith(fileSuffix) || !storableId.test(id)) continue;
      const record = await this.read(id);
      if (record !== undefined) found.push({ id, entry: { agentId: record.agentId, bytes: stats.size }, mtimeMs: stats.mtimeMs });
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const { id, entry } of found) this.note(id, entry);
  }

  private pathOf(dir: string, id: string): string {
    return join(dir, id + fileSuffix);
  }

  /** A file another process is writing, removed, not JSON, or not a record reads as no record. */
  private async read(id: string): Promise<StoredResponse | undefined> {
    if (this.dir === undefined) return undefined;
    const text = await readFile(this.pathOf(this.dir, id), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      const record = JSON.parse(text) as Partial<StoredResponse> | null;
      return isRecordOf(id, record) ? record : undefined;
    } catch {
      return undefined;
    }
  }

  private async write(dir: string, id: string, text: string): Promise<void> {
    const temp = `${this.pathOf(dir, id)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(temp, text);
      // Deleted (or evicted) while being written: the file must not come back.
      if (!this.index.has(id)) return await rm(temp, { force: true });
      await rename(temp, this.pathOf(dir, id));
      this.memory.delete(id);
    } catch {
      // A full or read-only disk loses the record's persistence, never the answer: it stays in memory.
      await rm(temp, { force: true }).catch(() => undefined);
    }
  }

  private note(id: string, entry: IndexEntry): void {
    this.bytesHeld -= this.index.get(id)?.bytes ?? 0;
    this.index.delete(id);
    this.index.set(id, entry);
    this.bytesHeld += entry.bytes;
    this.trim();
  }

  private touch(id: string, entry: IndexEntry): void {
    this.index.delete(id);
    this.index.set(id, entry);
  }

  /** Least recently used first, down to the budget; the newest record always stays. */
  private trim(): void {
    for (const id of this.index.keys()) {
      if (this.bytesHeld <= this.budgetBytes || this.index.size <= 1) return;
      void this.remove(id);
    }
  }

  private async remove(id: string): Promise<void> {
    this.bytesHeld -= this.index.get(id)?.bytes ?? 0;
    this.index.delete(id);
    this.memory.delete(id);
    if (this.dir !== undefined) await rm(this.pathOf(this.dir, id), { force: true }).catch(() => undefined);
  }
}
