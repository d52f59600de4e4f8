/**
 * The lint's graph checks (the folder rules themselves are eslint's no-restricted-imports, in
 * eslint.config.js): no import cycle between project files, and no import that resolves nowhere.
 */
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', comment: 'a cycle ties two modules into one: break it with a seam below both', from: {}, to: { circular: true } },
    { name: 'no-unresolvable', severity: 'error', from: {}, to: { couldNotResolve: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|build|deps|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
