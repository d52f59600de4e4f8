#!/usr/bin/env node
// `npm install`'s step: prepare the llama.cpp headers and libraries (extract-llama-source.mjs), then
// compile the addon with node-gyp. node-gyp downloads Node's headers unless it is told where they
// are, so when the running Node has its own (official builds and distribution packages do), they are
// used: nothing but npm packages is downloaded. A nodedir set in npm's config still wins.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
await import('./extract-llama-source.mjs');

/** The folder above include/node/node.h for this Node, if it has one. */
function localNodeDir() {
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node.h')) ? prefix : undefined;
}

const nodeGyp = createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
const configured = process.env.npm_config_nodedir;
const nodeDir = configured !== undefined && configured !== '' ? configured : localNodeDir();
const args = [nodeGyp, 'rebuild', ...(nodeDir === undefined ? [] : [`--nodedir=${nodeDir}`])];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
