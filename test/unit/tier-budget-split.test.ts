// One tier budget shared by the agents' caches and the Responses API's stored responses
// (shared/budgets.ts): the two shares add up to the budget exactly, the records' share is an eighth.
import t from 'tap';
import { splitTierBudget } from '../../shared/budgets.js';

t.test('the two shares add up to the whole budget, the records taking an eighth (rounded down)', async (t) => {
  t.same(splitTierBudget(8 * 1024 * 1024), { agentBytes: 7 * 1024 * 1024, responseBytes: 1024 * 1024 });
  t.same(splitTierBudget(1001), { agentBytes: 876, responseBytes: 125 });
  t.same(splitTierBudget(0), { agentBytes: 0, responseBytes: 0 });
});
