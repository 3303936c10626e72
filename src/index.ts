export { createDumper, Dumper } from './core/dumper.js';
export type { BypassReason, Dependents, StoreHealth } from './core/dumper.js';
export { BYPASS_REASONS, CHANNELS, INVALIDATION_KINDS, REFUSAL_REASONS } from './core/stats.js';
export type {
  BypassMessage,
  ChannelName,
  DumperStats,
  HitMessage,
  InvalidateMessage,
  InvalidationKind,
  MissMessage,
  RefusalMessage,
  RefusalReason,
  StoreMessage,
} from './core/stats.js';
export { DEFAULT_COMPRESSIBLE_TYPES } from './core/encoding.js';
export type { CompressOptions } from './core/encoding.js';
export { DumperError } from './core/errors.js';
export type { DumperErrorCode } from './core/errors.js';
export { DEFAULT_IGNORED_COOKIES, DEFAULT_IGNORED_QUERY_PARAMS } from './core/options.js';
export { DEFAULT_WARNED_REFUSALS } from './core/warnings.js';
export type { DumperOptions, PathMatcher } from './core/options.js';
export type { DumperLogger } from './core/log.js';
export type { ModelClass, ModelInstance, ModelOptions, PathList, PathsResult } from './core/models.js';
export type {
  ContentCoding,
  EncodedBody,
  EntryInfo,
  EntryListOptions,
  EntryPage,
  EnumerableStore,
  MaybePromise,
  PurgeQueueStore,
  QueueClaimOptions,
  QueuedItem,
  QueueStats,
  SetOptions,
  Store,
  StoredEntry,
  StoreInfo,
} from './core/store.js';
export { isEnumerable, listEntries } from './core/store.js';
export { PurgeError } from './core/purge.js';
export type { EdgeTagHeader, FlushOptions, Purger, PurgeSettings, PurgeStats } from './core/purge.js';
export type { RewarmOptions, RewarmStats } from './core/rewarm.js';
export { warm } from './core/warm.js';
export type { WarmOptions, WarmReport, WarmResult } from './core/warm.js';
export { canonicalPath } from './core/keys.js';
export { MemoryStore } from './stores/memory/index.js';
export type { MemoryStoreOptions } from './stores/memory/index.js';
