// Sampling values are held to what llama.cpp's float32 sampler computes without overflow (see
// test/process/sampling-extremes.test.ts for the engine death this prevents).
import t from 'tap';
import { float32SafeSampling } from '../../worker/engine/request-input.js';

t.test('temperatures below 1e-6 become greedy; others pass unchanged', async (t) => {
  t.equal(float32SafeSampling({ temperature: 1e-40, repeatPenalty: 1 }).temperature, 0);
  t.equal(float32SafeSampling({ temperature: 9.99e-7, repeatPenalty: 1 }).temperature, 0);
  t.equal(float32SafeSampling({ temperature: 1e-6, repeatPenalty: 1 }).temperature, 1e-6);
  t.equal(float32SafeSampling({ temperature: 0.7, repeatPenalty: 1 }).temperature, 0.7);
  t.equal(float32SafeSampling({ temperature: 0, repeatPenalty: 1 }).temperature, 0);
});

t.test('repeat penalties are held to [1e-6, 1e6]; the other fields are kept', async (t) => {
  t.same(float32SafeSampling({ temperature: 1, repeatPenalty: 5e-324, topK: 3 }), { temperature: 1, repeatPenalty: 1e-6, topK: 3 });
  t.equal(float32SafeSampling({ temperature: 1, repeatPenalty: 1e308 }).repeatPenalty, 1e6);
  t.equal(float32SafeSampling({ temperature: 1, repeatPenalty: 1.1 }).repeatPenalty, 1.1);
});
