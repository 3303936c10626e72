import createDebug from 'debug';

/**
 * Anything with `debug` (and ideally `warn`/`error`) methods: `console`, pino, winston, bunyan,
 * consola... pino and bunyan take the fields object first; console-like loggers take the message
 * first. page-dumper detects pino/bunyan (they have `bindings()` or `fields`) and calls each in its
 * own shape.
 */
export interface DumperLogger {
  debug(...args: any[]): void;
  warn?(...args: any[]): void;
  error?(...args: any[]): void;
}

export type LogFields = Record<string, unknown>;

/** What the dumper logs through: every decision at debug level, faults at warn/error. */
export interface Log {
  /** Whether debug messages go anywhere; checked before a message is built on the hit path. */
  readonly debugEnabled: boolean;
  debug(message: string, fields: LogFields): void;
  warn(message: string, fields: LogFields): void;
  error(message: string, fields: LogFields): void;
}

/** The namespace of the default logger: `DEBUG=dumper` shows every decision. */
export const LOG_NAMESPACE = 'dumper';

/**
 * `text` with control characters escaped (`\n` as `\u000a`): a request path is decoded before it is
 * logged, and `/a%0Adumper: ...` must not print a line of its own.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(text)
    ? // eslint-disable-next-line no-control-regex
      text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    : text;
}

function fieldsText(message: string, fields: LogFields): string {
  let s = '';
  for (const k in fields) {
    const v = fields[k];
    if (v === undefined) continue;
    // An error or a value the message already says is not said twice on the line.
    if ((v instanceof Error && message.includes(v.message)) || ((k === 'method' || k === 'path' || k === 'store') && typeof v === 'string' && message.includes(v))) continue;
    s += ` ${k}=${printable(typeof v === 'string' ? v : v instanceof Error ? v.message : JSON.stringify(v))}`;
  }
  return s;
}

/** The default: decisions through the `debug` package (`DEBUG=dumper`), faults always to stderr. */
function defaultLog(): Log {
  const d = createDebug(LOG_NAMESPACE);
  const e = createDebug(LOG_NAMESPACE + ':error');
  return {
    get debugEnabled() {
      return d.enabled;
    },
    debug(message, fields) {
      d('%s%s', printable(message), fieldsText(message, fields));
    },
    warn(message, fields) {
      if (e.enabled) e('%s%s', printable(message), fieldsText(message, fields));
      else console.warn(`${LOG_NAMESPACE}: ${printable(message)}${fieldsText(message, fields)}`);
    },
    error(message, fields) {
      if (e.enabled) e('%s%s', printable(message), fieldsText(message, fields));
      else console.error(`${LOG_NAMESPACE}: ${printable(message)}${fieldsText(message, fields)}`);
    },
  };
}

function wrap(logger: DumperLogger): Log {
  const anyLogger = logger as unknown as Record<string, unknown>;
  const objectFirst = typeof anyLogger.bindings === 'function' || typeof anyLogger.fields === 'object';
  // pino and bunyan: a logger named already (pino({ name: 'shop' }), a child with a name) keeps its
  // name, a second `name` key would be a duplicate in its JSON line, and the dumper says who it is
  // as `component`. An error goes under `err`, the key their serializers turn into message, stack
  // and cause (other keys lose them).
  const named = objectFirst && loggerName(anyLogger) !== undefined;
  const call = (fn: ((...args: any[]) => void) | undefined, message: string, fields: LogFields) => {
    if (!fn) return;
    if (objectFirst) {
      const record: LogFields = named ? { component: LOG_NAMESPACE } : { name: LOG_NAMESPACE };
      for (const k in fields) record[k === 'error' ? 'err' : k] = fields[k];
      fn.call(logger, record, message);
    } else fn.call(logger, `${LOG_NAMESPACE}: ${message}`, fields);
  };
  const levelEnabled = anyLogger.isLevelEnabled;
  return {
    get debugEnabled() {
      return typeof levelEnabled === 'function' ? Boolean(levelEnabled.call(logger, 'debug')) : true;
    },
    debug: (m, f) => call(logger.debug, m, f),
    warn: (m, f) => call(logger.warn ?? logger.debug, m, f),
    error: (m, f) => call(logger.error ?? logger.warn ?? logger.debug, m, f),
  };
}

/** The name a pino (`bindings()`) or bunyan (`fields`) logger already has, if any. */
function loggerName(logger: Record<string, unknown>): unknown {
  try {
    if (typeof logger.bindings === 'function') return (logger.bindings as () => Record<string, unknown>).call(logger)?.name;
    return (logger.fields as Record<string, unknown> | undefined)?.name;
  } catch {
    return undefined;
  }
}

const silent: Log = {
  debugEnabled: false,
  debug() {},
  warn() {},
  error() {},
};

export function makeLog(logger: DumperLogger | false | undefined): Log {
  if (logger === false) return silent;
  if (logger === undefined) return defaultLog();
  return wrap(logger);
}
