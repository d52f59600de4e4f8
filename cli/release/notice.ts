/**
 * `npm run notice [-- <file>]`: writes NOTICE (or <file>) from the production dependencies' licenses
 * and llama.cpp's notice (notice-text.ts). Commit the result; the NOTICE test fails when it is stale.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { productionLicenses } from './license-data.js';
import { llamaCppFacts } from './native-components.js';
import { renderNotice } from './notice-text.js';

const root = projectRoot();
const output = resolve(process.argv[2] ?? join(root, 'NOTICE'));
writeFileSync(output, renderNotice(await productionLicenses(root), llamaCppFacts(root)));
process.stdout.write(`wrote ${output}\n`);
