/**
 * The crash test: a real `semantic serve` is SIGKILLed again and again at random points of
 * write-behind and of an admin model swap, and restarted each time on the same cache dir. After each
 * restart every agent sends its next turn, which must be a cache hit whose greedy output equals a
 * cold run, or a clean miss (with that same output); no start may fail, and no temp file of a torn
 * write may be left in the cache dir once the server is ready. The choices (kill kind and moment,
 * each agent's turn) come from a seeded random, so a failing seed replays the same plan.
 *
 * Used by test/process/crash.test.ts (about 20 kills in CI) and by `npm run crash -- --kills 200` (crash.ts).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureModel } from '../shared/gguf/make-model.js';
import { startServer, type RunningServer } from '../test/helpers/server.js';
import { coldOutputs, MODEL_ID, sendTurn, swapModel, turnMessages, type ColdTable } from './crash-turns.js';
import { seededRandom } from '../shared/seeded-random.js';

export interface CrashOptions {
  kills: number;
  seed: number;
  agents?: number;
  /** Turns in each agent's conversation; the agents go through them in a loop. */
  turns?: number;
  log?: (line: string) => void;
}

export interface CrashSummary {
  seed: number;
  kills: { writeBehind: number; swap: number };
  /** Checked turns after each restart, and turns answered between a swap and its kill. */
  turns: { hits: number; misses: number; wrong: number; failed: number };
  failedStarts: number;
  /** Distinct temp files found in the cache dir once a restarted server was ready (each reported at its first sighting). */
  tempFiles: number;
  /** One line per wrong or failed turn, failed start and temp file: what to look at. */
  problems: string[];
  seconds: number;
}

type KillKind = 'write-behind' | 'swap';

/** Write-behind starts 250 ms after a turn ends (WRITE_DELAY_MS) and takes milliseconds per file here. */
const WRITE_WINDOW_MS = 700;
/** A swap between the tiny models takes about 1.2 s on a busy 2-core machine; the rest is the new model's turns. */
const SWAP_WINDOW_MS = 1600;

/** Every `*.tmp` file under `dir`, relative to it. */
export function tempFilesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.tmp'));
}

function serverArgs(model: string, cacheDir: string, extra: string[] = []): string[] {
  return ['serve', '--port', '0', '--model', model, '--model-id', MODEL_ID, '--threads', '1', '--context-size', '4096', '--max-sequences', '4', '--cache-dir', cacheDir, ...extra];
}

/** Cold outputs of both models, on a fresh cache dir with prefix sharing off: every turn a true miss. */
async function coldTable(models: [string, string], agents: number, turns: number): Promise<ColdTable> {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-crash-cold-'));
  const server = await startServer(serverArgs(models[0], dir, ['--prefix-sharing', 'off']));
  try {
    const table: ColdTable = new Map([[models[0], await coldOutputs(server, agents, turns, 'a')]]);
    if ((await swapModel(server, models[1])) !== 200) throw new Error('the cold run could not swap to the second model');
    table.set(models[1], await coldOutputs(server, agents, turns, 'b'));
    return table;
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

class CrashRun {
  readonly summary: CrashSummary;
  private readonly random: () => number;
  /** The next turn each agent sends. */
  private readonly nextTurn: number[];
  private readonly started = performance.now();
  private readonly tempsSeen = new Set<string>();

  constructor(
    private readonly options: Required<CrashOptions>,
    private readonly models: [string, string],
    private readonly cold: ColdTable,
    private readonly cacheDir: string,
  ) {
    this.random = seededRandom(options.seed);
    this.nextTurn = new Array<number>(options.agents).fill(0);
    this.summary = {
      seed: options.seed,
      kills: { writeBehind: 0, swap: 0 },
      turns: { hits: 0, misses: 0, wrong: 0, failed: 0 },
      failedStarts: 0,
      tempFiles: 0,
      problems: [],
      seconds: 0,
    };
  }

  async run(): Promise<CrashSummary> {
    for (let cycle = 0; cycle < this.options.kills; cycle++) {
      const server = await this.restart(cycle);
      if (server === undefined) break;
      await this.checkTurns(server, this.models[0], cycle, () => false);
      await this.killAtRandom(server, cycle);
    }
    this.summary.seconds = Math.round((performance.now() - this.started) / 100) / 10;
    return this.summary;
  }

  /** Starts the server on the first model and the same cache dir; counts a failed start and the temp files it left. */
  private async restart(cycle: number): Promise<RunningServer | undefined> {
    let server: RunningServer;
    try {
      server = await startServer(serverArgs(this.models[0], this.cacheDir));
    } catch (error) {
      this.summary.failedStarts++;
      this.summary.problems.push(`cycle ${cycle}: the server failed to start: ${String(error).slice(0, 2000)}`);
      return undefined;
    }
    for (const name of tempFilesUnder(this.cacheDir).filter((found) => !this.tempsSeen.has(found))) {
      this.tempsSeen.add(name);
      this.summary.tempFiles++;
      this.summary.problems.push(`cycle ${cycle}: temp file ${name} left after startup`);
    }
    return server;
  }

  /**
   * Every agent's next turn, all at once (batched): each must equal its cold output. Turns cut short
   * by the kill (`killed()` true by the time they fail) are not counted.
   */
  private async checkTurns(server: RunningServer, model: string, cycle: number, killed: () => boolean): Promise<void> {
    const expected = this.cold.get(model) as string[][];
    const caches: string[] = [];
    const sends = this.nextTurn.map(async (turn, agent) => {
      try {
        const answer = await sendTurn(server, `agent-${agent}`, turnMessages(agent, turn));
        this.nextTurn[agent] = (turn + 1) % this.options.turns;
        caches[agent] = answer.cache;
        this.judge(cycle, agent, turn, answer, expected[agent]?.[turn] as string);
      } catch (error) {
        if (killed()) return;
        this.summary.turns.failed++;
        this.summary.problems.push(`cycle ${cycle}: agent ${agent} turn ${turn} failed: ${String(error)}`);
      }
    });
    await Promise.all(sends);
    this.options.log(`cycle ${cycle}: turns on ${model === this.models[0] ? 'the first' : 'the second'} model: ${caches.join(' ')}`);
  }

  private judge(cycle: number, agent: number, turn: number, answer: { status: number; cache: string; text: string }, expected: string): void {
    const { turns, problems } = this.summary;
    if (answer.status !== 200) {
      turns.failed++;
      problems.push(`cycle ${cycle}: agent ${agent} turn ${turn}: status ${answer.status}: ${answer.text}`);
    } else if (answer.text !== expected) {
      turns.wrong++;
      problems.push(`cycle ${cycle}: agent ${agent} turn ${turn} (${answer.cache}): ${JSON.stringify(answer.text)} instead of ${JSON.stringify(expected)}`);
    } else if (answer.cache === 'miss') {
      turns.misses++;
    } else {
      turns.hits++;
    }
  }

  /**
   * Kinds alternate (both are covered by any run of two or more kills), the moment is random.
   * Write-behind: the turns just answered fall due 250 ms after they ended; the kill lands anywhere
   * in WRITE_WINDOW_MS. Swap: a swap to the second model starts now, then (if it ends first) every
   * agent's turn on it; the kill lands anywhere in SWAP_WINDOW_MS, so in the old model's last writes,
   * the load, the new model's turns or their write-behind.
   */
  private async killAtRandom(server: RunningServer, cycle: number): Promise<void> {
    const kind: KillKind = cycle % 2 === 0 ? 'write-behind' : 'swap';
    // Every other swap cycle lets the swap and the new model's turns finish first and kills in their
    // write-behind: on a loaded machine a swap outlasts SWAP_WINDOW_MS, and without these cycles the
    // second model's files would never be written, so never read back after a kill.
    if (kind === 'swap' && cycle % 4 === 3) return this.killAfterSwap(server, cycle);
    const delayMs = Math.round(this.random() * (kind === 'swap' ? SWAP_WINDOW_MS : WRITE_WINDOW_MS));
    this.options.log(`cycle ${cycle}: kill during ${kind} after ${delayMs} ms`);
    let killed = false;
    const kill = new Promise<void>((resolve) =>
      setTimeout(() => {
        killed = true;
        server.child.kill('SIGKILL');
        resolve();
      }, delayMs),
    );
    if (kind === 'swap') {
      this.summary.kills.swap++;
      void this.swapThenTurns(server, cycle, () => killed);
    } else {
      this.summary.kills.writeBehind++;
    }
    await kill;
    await server.exited;
  }

  /** The swap and the second model's turns run to their end; the kill lands in those turns' write-behind. */
  private async killAfterSwap(server: RunningServer, cycle: number): Promise<void> {
    this.summary.kills.swap++;
    await this.swapThenTurns(server, cycle, () => false);
    const delayMs = Math.round(this.random() * WRITE_WINDOW_MS);
    this.options.log(`cycle ${cycle}: kill after the swap, in the second model's write-behind, after ${delayMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    server.child.kill('SIGKILL');
    await server.exited;
  }

  private async swapThenTurns(server: RunningServer, cycle: number, killed: () => boolean): Promise<void> {
    const status = await swapModel(server, this.models[1]).catch(() => 0);
    if (killed()) return;
    if (status !== 200) {
      this.summary.turns.failed++;
      this.summary.problems.push(`cycle ${cycle}: the swap answered ${status}`);
      return;
    }
    await this.checkTurns(server, this.models[1], cycle, killed);
  }
}

/** Runs the whole test; the cache dir and the cold run's dir are removed at the end. */
export async function runCrashTest(options: CrashOptions): Promise<CrashSummary> {
  const full: Required<CrashOptions> = { agents: 4, turns: 3, log: () => undefined, ...options };
  const models: [string, string] = [await ensureModel('tiny', 0), await ensureModel('tiny', 1)];
  full.log(`seed ${full.seed}: cold outputs of ${full.agents} agents x ${full.turns} turns on two models`);
  const cold = await coldTable(models, full.agents, full.turns);
  const cacheDir = mkdtempSync(join(tmpdir(), 'semantic-crash-'));
  try {
    return await new CrashRun(full, models, cold, cacheDir).run();
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}
