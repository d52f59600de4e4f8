/**
 * One agent's requests run in arrival order, one at a time: a request whose agent already has one
 * admitted or queued waits here until that turn ends, so its next turn sees the cache the previous
 * one left. Requests of different agents never wait for each other here.
 *
 * Only where a client named the agent. A request whose agent id was derived from its conversation's
 * opening (no id given: a stateless client) is independent of the others that open alike; when its
 * agent is busy it starts at once as a fork, under an id of its own that no client can send, and
 * reuses the busy agent's cells through prefix sharing. A fork's cache is not kept: the agent's own
 * turns keep the conversation's.
 */
import type { GenerateMessage } from '../../shared/protocol/messages.js';

/** Ids a client can send never hold '#' (shared/agent-id.ts), so a fork's id is never an agent's. */
const FORK_MARK = '#';

/** Whether the id is a fork's: a request that ran beside its busy agent, whose cache is not kept. */
export function isFork(agentId: string): boolean {
  return agentId.includes(FORK_MARK);
}

export class AgentTurns {
  /** Submitted, not yet looked at: admitted between steps, when the context may be touched. */
  private readonly incoming: GenerateMessage[] = [];
  /** Agents with a turn in flight, and their later requests in order. */
  private readonly busy = new Map<string, GenerateMessage[]>();

  get hasIncoming(): boolean {
    return this.incoming.length > 0;
  }

  submit(request: GenerateMessage): void {
    this.incoming.push(request);
  }

  /** The incoming requests whose agents are free, now marked busy; the others wait their turn. */
  takeStartable(): GenerateMessage[] {
    const startable: GenerateMessage[] = [];
    for (const request of this.incoming.splice(0)) {
      const waiting = this.busy.get(request.agentId);
      if (waiting !== undefined && request.agentIdDerived === true) {
        startable.push({ ...request, agentId: `${request.agentId}${FORK_MARK}${request.requestId}` });
      } else if (waiting !== undefined) {
        waiting.push(request);
      } else {
        this.busy.set(request.agentId, []);
        startable.push(request);
      }
    }
    return startable;
  }

  /** The agent's turn is over: its waiting requests go back in front, in order, for the next boundary. */
  turnEnded(agentId: string): void {
    const waiting = this.busy.get(agentId) ?? [];
    this.busy.delete(agentId);
    this.incoming.unshift(...waiting);
  }

  /** Whether the agent has a request submitted, waiting, queued or running. */
  isBusy(agentId: string): boolean {
    return this.busy.has(agentId) || this.incoming.some((r) => r.agentId === agentId);
  }

  /** Removes a request that has not started its turn; false if it is not here. */
  remove(requestId: string): boolean {
    for (const list of [this.incoming, ...this.busy.values()]) {
      const at = list.findIndex((r) => r.requestId === requestId);
      if (at >= 0) {
        list.splice(at, 1);
        return true;
      }
    }
    return false;
  }

  /** Every request not started, removed (the engine died). */
  takeAll(): GenerateMessage[] {
    const all = [...this.incoming.splice(0), ...[...this.busy.values()].flat()];
    this.busy.clear();
    return all;
  }
}
