/**
 * One agent's requests run in arrival order, one at a time: a request whose agent already has one
 * admitted or queued waits here until that turn ends, so its next turn sees the cache the previous
 * one left. Requests of different agents never wait for each other here.
 *
 * Waiting here is waiting in the engine's queue: each waiting turn holds a place in the QueueBudget
 * (count, tokens, and the agent's own share) from the moment it waits until it starts, so one
 * agent's requests cannot pile up beside the limits; one that finds no place is refused (429).
 *
 * Only where a client named the agent. A request whose agent id was derived from its conversation's
 * opening (no id given: a stateless client) is independent of the others that open alike; when its
 * agent is busy it starts at once as a fork, under an id of its own that no client can send, and
 * reuses the busy agent's cells through prefix sharing. A fork's cache is not kept: the agent's own
 * turns keep the conversation's.
 */
import type { ReasoningStart } from '../tools/reasoning.js';
import type { GenerateMessage } from '../../shared/protocol/messages.js';
import { queueRefusalError, type QueueBudget, type QueueRefusal } from './queue-budget.js';

/** Ids a client can send never hold '#' (shared/agent-id.ts), so a fork's id is never an agent's. */
const FORK_MARK = '#';

/** Whether the id is a fork's: a request that ran beside its busy agent, whose cache is not kept. */
export function isFork(agentId: string): boolean {
  return agentId.includes(FORK_MARK);
}

/** A request tokenized on arrival: what its wait weighs, and what cannot run is refused before it waits. */
export interface Turn {
  request: GenerateMessage;
  prompt: Int32Array;
  maxTokens: number;
  /** Where the output starts: inside a think block the prompt opened, ... (worker/tools/reasoning.ts). */
  reasoningStart?: ReasoningStart;
}

/** What became of an arriving turn: it starts (as given, or as a fork), waits behind its agent's turn, or may not wait. */
export type Arrival = { start: Turn } | 'waiting' | QueueRefusal;

export class AgentTurns {
  /** Submitted, not yet looked at: tokenized between steps, when the engine may use the model. */
  private readonly submitted: GenerateMessage[] = [];
  /** Turns whose agent's previous turn ended: started first at the next boundary. */
  private readonly next: Turn[] = [];
  /** Agents with a turn in flight (running, queued for cells, or in `next`), and their later turns in order. */
  private readonly busy = new Map<string, Turn[]>();

  constructor(private readonly budget: QueueBudget) {}

  /** Whether a boundary has requests to look at. */
  get hasIncoming(): boolean {
    return this.submitted.length > 0 || this.next.length > 0;
  }

  submit(request: GenerateMessage): void {
    this.submitted.push(request);
  }

  /**
   * The turns to start at this boundary, in order: those whose agents' previous turns ended (their
   * budget places go with them to admission), then the requests submitted since that start their
   * agent's turn or run as forks. Each submitted request is tokenized first, so one that can never
   * run is answered its coded 400 before it waits; the others wait behind their agent's turn, or
   * are answered 429 when the queue has no place for them.
   */
  takeStartable(tokenize: (request: GenerateMessage) => Turn, fail: (requestId: string, error: unknown) => void): Turn[] {
    const startable = this.next.splice(0);
    for (const request of this.submitted.splice(0)) {
      let turn: Turn;
      try {
        turn = tokenize(request);
      } catch (error) {
        fail(request.requestId, error);
        continue;
      }
      const arrival = this.arrive(turn);
      if (typeof arrival !== 'string') startable.push(arrival.start);
      else if (arrival !== 'waiting') fail(request.requestId, queueRefusalError(arrival));
    }
    return startable;
  }

  /** A tokenized new request: its agent is free (it starts and the agent is busy), or busy (it waits, if it may). */
  arrive(turn: Turn): Arrival {
    const { agentId, agentIdDerived, requestId } = turn.request;
    const waiting = this.busy.get(agentId);
    if (waiting === undefined) {
      this.busy.set(agentId, []);
      return { start: turn };
    }
    if (agentIdDerived === true) return { start: { ...turn, request: { ...turn.request, agentId: `${agentId}${FORK_MARK}${requestId}` } } };
    const refusal = this.budget.enter({ requestId, agentId }, turn.prompt.length + turn.maxTokens);
    if (refusal !== undefined) return refusal;
    waiting.push(turn);
    return 'waiting';
  }

  /** The agent's turn is over: its next waiting turn goes to the next boundary, or the agent is free. */
  turnEnded(agentId: string): void {
    const following = this.busy.get(agentId)?.shift();
    if (following === undefined) this.busy.delete(agentId);
    else this.next.push(following);
  }

  /** Whether the agent has a request submitted, waiting, queued or running. */
  isBusy(agentId: string): boolean {
    return this.busy.has(agentId) || this.submitted.some((r) => r.agentId === agentId);
  }

  /** Removes a request that has not started its turn; false if it is not here. */
  remove(requestId: string): boolean {
    const at = this.submitted.findIndex((r) => r.requestId === requestId);
    if (at >= 0) {
      this.submitted.splice(at, 1);
      return true;
    }
    const removed = this.removeWaiting(requestId);
    if (removed === undefined) return false;
    this.budget.leave(requestId);
    return true;
  }

  /** Every request not started, removed (the engine drains or died). */
  takeAll(): GenerateMessage[] {
    const turns = [...this.next.splice(0), ...[...this.busy.values()].flat()];
    this.busy.clear();
    for (const turn of turns) this.budget.leave(turn.request.requestId);
    return [...this.submitted.splice(0), ...turns.map((turn) => turn.request)];
  }

  /** A turn in `next` held its agent's turn: removing it passes the turn on. */
  private removeWaiting(requestId: string): Turn | undefined {
    const inNext = this.next.findIndex((turn) => turn.request.requestId === requestId);
    if (inNext >= 0) {
      const [turn] = this.next.splice(inNext, 1) as [Turn];
      this.turnEnded(turn.request.agentId);
      return turn;
    }
    for (const list of this.busy.values()) {
      const at = list.findIndex((turn) => turn.request.requestId === requestId);
      if (at >= 0) return list.splice(at, 1)[0];
    }
    return undefined;
  }
}
