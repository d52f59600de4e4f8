/** The tiny generated model every model-dependent test shares (generated once, cached outside the repo). */
import { ensureModel } from '../../shared/gguf/make-model.js';

export function tinyModelPath(): Promise<string> {
  return ensureModel('tiny');
}
