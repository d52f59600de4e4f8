/**
 * The inference thread's current runtime (runtime.ts) and the admin API's model swap. A swap lets
 * the requests already submitted run to their end on the old model, writes its idle agents' unwritten
 * turns, unloads it and loads the new one with the same options; if that load fails the old model is
 * loaded back (rollback) and the swap's answer says why. Meanwhile frames from the front wait here and
 * then go to whichever model serves, except aborts and cuts, which concern the requests still running
 * on the old model. The front holds new generations itself during a swap (engine-client.ts), so what
 * waits here are token counts, Agents API calls, limits, cache clears and a drain.
 */
import { loadRuntime, retireRuntime, type LoadEnvironment, type Runtime } from './runtime.js';
import type { Engine } from '../engine/engine.js';
import { ErrorCode, toErrorPayload } from '../../shared/errors.js';
import type { FrontToInference, SwapModelMessage } from '../../shared/protocol/messages.js';

/** How a runtime is loaded and retired: runtime.ts's functions, or a unit test's over a fake addon. */
export interface RuntimeLoader {
  load: typeof loadRuntime;
  retire: typeof retireRuntime;
}

export class ModelHost {
  /** Frames waiting for a swap to end; undefined when none runs. */
  private held: FrontToInference[] | undefined;

  constructor(
    private runtime: Runtime,
    private readonly environment: LoadEnvironment,
    /** Serves one frame with the engine of the model serving now. */
    private readonly serve: (engine: Engine, message: FrontToInference) => void,
    private readonly runtimes: RuntimeLoader = { load: loadRuntime, retire: retireRuntime },
  ) {}

  receive(message: FrontToInference): void {
    if (message.type === 'swap_model') return void this.swap(message);
    if (this.held !== undefined && message.type !== 'abort' && message.type !== 'cut') return void this.held.push(message);
    this.serve(this.runtime.engine, message);
  }

  private async swap(message: SwapModelMessage): Promise<void> {
    const { post } = this.environment;
    const { requestId } = message;
    if (this.held !== undefined) return post({ type: 'failed', requestId, error: { code: ErrorCode.Conflict, message: 'A model swap is already running.' } });
    this.held = [];
    const old = this.runtime;
    const begun = performance.now();
    try {
      await this.runtimes.retire(old);
    } catch (error) {
      // The old model is half torn down: nothing can be trusted to serve.
      post({ type: 'engine_dead', error: { code: ErrorCode.EngineDead, message: `unloading ${old.summary.id} for a swap failed: ${toErrorPayload(error).message}` } });
      this.environment.metrics.swapped('failed', begun);
      return this.failHeld();
    }
    try {
      this.runtime = await this.runtimes.load(this.environment, { path: message.path, id: message.id });
      post({ type: 'model_swapped', requestId, model: this.runtime.summary });
      this.environment.metrics.swapped('ok', begun);
    } catch (error) {
      const reason = toErrorPayload(error).message;
      const back = await this.rollBack(old, reason);
      this.environment.metrics.swapped(back ? 'rolled_back' : 'failed', begun);
      if (!back) return this.failHeld();
      const text = `Could not load ${message.path}: ${reason}. The previous model ${old.summary.id} was loaded back and serves again.`;
      post({ type: 'model_swapped', requestId, model: this.runtime.summary, error: { code: ErrorCode.ModelLoadFailed, message: text, param: 'path' } });
    }
    this.release();
  }

  /** The held frames go to the model serving now, each guarded as the port's own handler guards them. */
  private release(): void {
    const frames = this.held ?? [];
    this.held = undefined;
    for (const frame of frames) {
      try {
        this.receive(frame);
      } catch (error) {
        this.environment.post({ type: 'failed', requestId: 'requestId' in frame ? frame.requestId : 'protocol', error: toErrorPayload(error) });
      }
    }
  }

  /** The engine is dead: nothing will serve the held frames, so each is answered now, not kept forever. */
  private failHeld(): void {
    const frames = this.held ?? [];
    this.held = undefined;
    const error = { code: ErrorCode.EngineDead, message: 'the inference engine stopped during a model swap' };
    for (const frame of frames) if ('requestId' in frame) this.environment.post({ type: 'failed', requestId: frame.requestId, error });
  }

  /** Loads the old model back; false (and the engine is dead) if that fails too. */
  private async rollBack(old: Runtime, reason: string): Promise<boolean> {
    try {
      this.runtime = await this.runtimes.load(this.environment, { path: old.summary.path, id: old.summary.id });
      return true;
    } catch (error) {
      const again = toErrorPayload(error).message;
      this.environment.post({
        type: 'engine_dead',
        error: { code: ErrorCode.EngineDead, message: `a model swap failed (${reason}) and loading the previous model back failed too: ${again}` },
      });
      return false;
    }
  }
}
