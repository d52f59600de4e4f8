/**
 * Adds to a CycloneDX SBOM what the npm tree cannot show: the native libraries the addon links.
 * llama.cpp is one component and ggml (vendored in its repository, built into libggml*) a second
 * one at the same release; the root depends on llama.cpp (addon/ links libllama), llama.cpp on ggml,
 * and each @node-llama-cpp/<platform> package, which carries the prebuilt libraries, on llama.cpp.
 */
import type { LlamaCppFacts } from './native-components.js';

interface Component {
  'bom-ref'?: string;
  group?: string;
  name: string;
  components?: Component[];
  [field: string]: unknown;
}

interface Dependency {
  ref: string;
  dependsOn?: string[];
}

export interface Sbom {
  specVersion: string;
  metadata: { component: Component };
  components: Component[];
  dependencies: Dependency[];
  [field: string]: unknown;
}

export const llamaCppRef = 'native:llama.cpp';
export const ggmlRef = 'native:ggml';

export function llamaCppComponents(facts: LlamaCppFacts): Component[] {
  const repoUrl = `https://github.com/${facts.repo}`;
  const [owner, name] = facts.repo.split('/');
  const describe = (ref: string, component: string, purl: string, description: string): Component => ({
    type: 'library',
    'bom-ref': ref,
    group: owner,
    name: component,
    version: facts.tag,
    description,
    licenses: [{ license: { id: 'MIT', acknowledgement: 'declared' } }],
    purl,
    externalReferences: [{ type: 'vcs', url: repoUrl }],
    properties: [
      { name: 'semantic:source', value: `node-llama-cpp ${facts.nodeLlamaCppVersion} llama/gitRelease.bundle` },
      { name: 'semantic:source:commit', value: facts.commit },
    ],
  });
  return [
    describe(
      llamaCppRef,
      'llama.cpp',
      `pkg:github/${owner}/${name}@${facts.tag}`,
      'LLM inference in C/C++: libllama, which the addon (addon/) links dynamically; headers from the same release',
    ),
    describe(
      ggmlRef,
      'ggml',
      `pkg:github/${owner}/${name}@${facts.tag}#ggml`,
      "Tensor library vendored in llama.cpp's repository (ggml/): libggml, libggml-base and the CPU/GPU backends libllama loads",
    ),
  ];
}

function allComponents(components: Component[]): Component[] {
  return components.flatMap((component) => [component, ...allComponents(component.components ?? [])]);
}

function addDependsOn(sbom: Sbom, ref: string, target: string): void {
  let entry = sbom.dependencies.find((dependency) => dependency.ref === ref);
  if (entry === undefined) {
    entry = { ref };
    sbom.dependencies.push(entry);
  }
  entry.dependsOn = [...new Set([...(entry.dependsOn ?? []), target])];
}

/** Returns the SBOM with llama.cpp and ggml added as components and as dependencies. */
export function withNativeComponents(sbom: Sbom, facts: LlamaCppFacts): Sbom {
  const rootRef = sbom.metadata.component['bom-ref'];
  if (rootRef === undefined) throw new Error('the SBOM names no bom-ref for its root component');
  const result: Sbom = {
    ...sbom,
    components: [...sbom.components, ...llamaCppComponents(facts)],
    dependencies: [...sbom.dependencies.map((dependency) => ({ ...dependency })), { ref: llamaCppRef, dependsOn: [ggmlRef] }, { ref: ggmlRef }],
  };
  addDependsOn(result, rootRef, llamaCppRef);
  for (const component of allComponents(sbom.components)) {
    if (component.group === '@node-llama-cpp' && component['bom-ref'] !== undefined) addDependsOn(result, component['bom-ref'], llamaCppRef);
  }
  return result;
}
