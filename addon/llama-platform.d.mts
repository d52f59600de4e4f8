// Types of llama-platform.mjs (plain JavaScript: it runs at install time, before TypeScript is compiled).

export interface Target {
  platform: string;
  arch: string;
  /** 'glibc' or 'musl' on Linux; undefined elsewhere. */
  libc: 'glibc' | 'musl' | undefined;
}

export interface LibraryPackage {
  suffix: string;
  platform: string;
  arch: string;
  libc?: 'glibc';
  gpu?: 'cuda' | 'vulkan';
}

export type LibraryChoice = { ok: true; packageName: string | null; libDir: string; why: string } | { ok: false; message: string };

export declare const SCOPE: '@node-llama-cpp/';
export declare const defaultPackages: LibraryPackage[];
export declare const gpuPackages: LibraryPackage[];

export declare function chooseLlamaLibraries(input: {
  target: Target;
  /** Package name → its folder, for the library packages that resolve. */
  installed: Record<string, string | undefined>;
  env: { SEMANTIC_LLAMA_LIB_DIR?: string; SEMANTIC_LLAMA_GPU?: string };
  /** The library packages' version: node-llama-cpp's, whose llama.cpp release the headers are. */
  version: string;
}): LibraryChoice;
