import { brandClass } from './brand.js';

/** Stable error codes carried by every error page-dumper throws or reports. */
export type DumperErrorCode = 'DUMPER_STORE_FAILURE' | 'DUMPER_PURGE_FAILURE';

/**
 * An operational error, as page-dumper logs it: a store operation that failed (or a purge queue
 * operation, `DUMPER_PURGE_FAILURE`), with the underlying error as `cause`. Such errors are never thrown into requests or writers (a failing store
 * fails open). Configuration and programming mistakes are `TypeError`s thrown where they happen.
 */
export class DumperError extends Error {
  readonly code: DumperErrorCode;
  constructor(code: DumperErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DumperError';
    this.code = code;
  }
}
brandClass(DumperError, 'DumperError');
