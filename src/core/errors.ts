/** Stable error codes carried by every error page-dumper throws or reports. */
export type DumperErrorCode =
  | 'DUMPER_STORE_FAILURE'
  | 'DUMPER_CLOSED';

/**
 * An operational error: a store that failed, a dumper used after `close()`.
 * Configuration and programming mistakes are plain `TypeError`s thrown where they happen.
 */
export class DumperError extends Error {
  readonly code: DumperErrorCode;
  constructor(code: DumperErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DumperError';
    this.code = code;
  }
}
