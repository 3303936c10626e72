export { runStoreConformance } from './store-conformance.js';
export type { StoreConformanceOptions } from './store-conformance.js';
