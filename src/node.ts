// Node-only helpers (file system); the main entry point stays browser-safe.
export { saveNetworkFile, loadNetworkFile } from './io/modelFiles.js';
export { writeFileAtomic } from './io/atomicWrite.js';
export { loadDataset } from './data/load.js';
export * from './io/safetensorsFiles.js';
export * from './llm/tokenizerFiles.js';
export * from './llm/llamaFiles.js';
export { GpuLlama, type GpuLlamaOptions } from './gpu/llama.js';
export { resolveInside } from './io/safePath.js';
