// Lint TypeScript with the type-aware recommended rules, and hold the layers to the architecture
// (docs/architecture.md, "Import rules"): shared/ is the ground floor and imports nothing above it,
// the supervisor and the worker never import each other, cli/ (the process entry) sits on top, and
// only the engine and inference layers load the native addon (others may name its types).
import tseslint from 'typescript-eslint';

/** A restriction on import paths (the specifier as written; relative paths name the folder). */
const forbid = (folders, message) => ({ regex: `(^|/)(${folders.join('|')})/`, message });
const addonValues = {
  regex: '(^|/)engine/addon\\.js$',
  allowTypeImports: true,
  message: 'only worker/engine and worker/inference load the addon; import its types with `import type`',
};
const nativeModules = { regex: '(^node-llama-cpp|\\.node)$', message: 'only worker/engine/addon.ts loads native code' };

const restrict = (files, patterns, ignores = []) => ({
  files,
  ignores,
  rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns }] },
});

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'deps/', 'node_modules/', '.tap/', 'coverage/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  restrict(['shared/**/*.ts'], [forbid(['worker', 'supervisor', 'cli', 'bench', 'test'], 'shared/ is the ground floor: it imports nothing above it'), addonValues, nativeModules]),
  restrict(['supervisor/**/*.ts'], [forbid(['worker', 'cli', 'bench', 'test'], 'the supervisor knows workers only through shared/protocol/ipc.ts'), addonValues, nativeModules]),
  restrict(
    ['worker/**/*.ts'],
    [forbid(['supervisor', 'cli', 'bench', 'test'], 'a worker knows its supervisor only through shared/protocol/ipc.ts'), addonValues, nativeModules],
    ['worker/engine/**', 'worker/inference/**'],
  ),
  restrict(
    ['worker/engine/**/*.ts', 'worker/inference/**/*.ts'],
    [forbid(['supervisor', 'cli', 'bench', 'test'], 'a worker knows its supervisor only through shared/protocol/ipc.ts')],
  ),
  restrict(['cli/**/*.ts'], [forbid(['bench', 'test'], 'the product does not import its tests or benches'), addonValues, nativeModules]),
  restrict(['test/unit/**/*.ts'], [addonValues, nativeModules]),
);
