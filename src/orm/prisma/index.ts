/**
 * page-dumper/prisma: a Prisma Client extension that invalidates the pages of every row a write
 * changes, as django-dumper's post_save, pre_delete and m2m_changed signals do.
 *
 * ```ts
 * const prisma = new PrismaClient({ adapter }).$extends(prismaDumper(dumper));
 * dumper.register('IceCream', { dependentPaths: (row) => ['/ice-cream/', `/ice-cream/${row.slug}/`] });
 * ```
 *
 * Prisma 7 has no middleware (`$use`) and no after-commit hook. The extension wraps every model
 * write (a query extension) and `$transaction` (a client extension): inside a transaction the
 * pages are invalidated when the write runs and again once the outermost transaction has
 * committed, so a page rendered in between from the old data does not outlive the commit.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Prisma } from '@prisma/client/extension';
import type { PrismaClientExtends } from '@prisma/client/extension';
import type { Types } from '@prisma/client/runtime/client';
import { assertDumper, type Dumper } from '../../core/dumper.js';
import { readOptions, ReadTracker } from '../reads.js';
import { PrismaReads, READS } from './reads.js';

/** The tag names of `trackReads` (docs/track-reads.md), to tag or invalidate by hand beside it. */
export { keyTag, listTag, rowTag, tableTag } from '../reads.js';
import { readDataModel, type ModelInfo, type RuntimeDataModel } from './schema.js';
import { isPlain, Writes, type Reader, type Scope, type WriteContext } from './writes.js';

export interface PrismaDumperOptions {
  /**
   * Relations to load with a model's rows before its `dependentPaths(row)` (and `dependentTags`)
   * run, as a Prisma `include` keyed by model name: `{ IceCream: { sizes: true } }` hands
   * `dependentPaths` rows with a `sizes` array. Rows are read inside the write's transaction:
   * before a delete (while the row and its relations exist) and after other writes.
   *
   * Default: none; rows carry every scalar field of the model, whatever the write selected.
   * Trap: every write of the model reads these relations again (twice for an update): include
   * what the paths need, not more.
   */
  include?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /**
   * The most rows a bulk write (`updateMany`, `updateManyAndReturn`, `deleteMany`, `createMany`)
   * resolves one by one. Above it the write still runs, and every page is invalidated
   * (`dumper.invalidateAll()`) with a warning.
   *
   * Default: 1000 rows.
   */
  maxRows?: number;
  /**
   * Tag each page with the rows and models its render read through this client, and invalidate
   * those tags on every write of every model (registered or not): pages need no
   * `dependentPaths`. Reads by primary key tag rows; by a foreign or unique key, that key; lists,
   * filters, counts, aggregates and groupings tag their models; raw queries are not parsed.
   * See docs/track-reads.md.
   *
   * Default: false.
   */
  trackReads?: boolean;
  /**
   * With `trackReads`: the most tags a page gets from its reads. Past it, a model's further row
   * reads tag the whole model (its list tag, which every write of the model invalidates), with a
   * warning in the log.
   *
   * Default: 500.
   */
  maxTagsPerPage?: number;
}

/**
 * What `prismaDumper()` returns: pass it to `prisma.$extends()`. Typed as an extension that adds
 * nothing, so the extended client keeps the types of the client it extends.
 */
export type PrismaDumperExtension = (client: any) => PrismaClientExtends<Types.Extensions.DefaultArgs>;

/** The parameters Prisma hands a query extension. `__internalParams` says which transaction a query runs in. */
interface QueryParams {
  readonly model: string;
  readonly operation: string;
  readonly args: Record<string, unknown> | undefined;
  readonly query: (args: Record<string, unknown>) => Promise<unknown>;
  readonly __internalParams?: { readonly transaction?: { readonly kind?: string }; readonly dataPath?: unknown };
}

const DEFAULT_MAX_ROWS = 1000;

interface Settings {
  readonly include: Map<string, Record<string, unknown>>;
  readonly maxRows: number;
  readonly trackReads: boolean;
  readonly maxTagsPerPage: number;
}

function validate(options: PrismaDumperOptions | undefined): Settings {
  if (options === undefined) return { include: new Map(), maxRows: DEFAULT_MAX_ROWS, ...readOptions('prismaDumper', undefined, undefined) };
  if (!isPlain(options)) throw new TypeError('page-dumper: prismaDumper(dumper, options): options must be an object');
  const tracking = readOptions('prismaDumper', options.trackReads, options.maxTagsPerPage);
  const include = new Map<string, Record<string, unknown>>();
  if (options.include !== undefined) {
    if (!isPlain(options.include)) {
      throw new TypeError('page-dumper: prismaDumper() option include must be an object of Prisma includes keyed by model name, such as { IceCream: { sizes: true } }');
    }
    for (const [model, value] of Object.entries(options.include)) {
      if (!isPlain(value)) {
        throw new TypeError(`page-dumper: prismaDumper() option include.${model} must be a Prisma include object, such as { sizes: true }`);
      }
      include.set(model, value);
    }
  }
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
  if (typeof maxRows !== 'number' || !Number.isSafeInteger(maxRows) || maxRows < 1) {
    throw new TypeError(`page-dumper: prismaDumper() option maxRows must be a positive integer, got ${String(maxRows)}`);
  }
  return { include, maxRows, ...tracking };
}

function dataModelOf(client: Record<string, unknown>): Map<string, ModelInfo> {
  const runtime = client._runtimeDataModel as RuntimeDataModel | undefined;
  if (runtime === undefined || runtime === null || typeof runtime.models !== 'object') {
    throw new TypeError("page-dumper: prismaDumper() could not read this Prisma Client's data model; it needs Prisma 7 or later");
  }
  const engine = client._engineConfig as { inlineSchema?: unknown; activeProvider?: unknown; adapter?: { provider?: unknown } } | undefined;
  const schema = engine?.inlineSchema;
  const provider = engine?.adapter?.provider ?? engine?.activeProvider;
  return readDataModel(runtime, typeof schema === 'string' ? schema : undefined, typeof provider === 'string' ? provider : undefined);
}

function checkInclude(include: ReadonlyMap<string, Record<string, unknown>>, models: ReadonlyMap<string, ModelInfo>): void {
  for (const [name, value] of include) {
    const model = models.get(name);
    if (model === undefined) {
      throw new TypeError(`page-dumper: prismaDumper() option include names model "${name}", which this Prisma Client does not have`);
    }
    for (const field of Object.keys(value)) {
      if (field !== '_count' && !model.relations.has(field)) {
        throw new TypeError(`page-dumper: prismaDumper() option include.${name}.${field}: ${name} has no relation named "${field}"`);
      }
    }
  }
}

/**
 * The Prisma Client extension. Every model write (create, createMany, createManyAndReturn,
 * update, updateMany, updateManyAndReturn, upsert, delete, deleteMany, and the nested writes in
 * their arguments) invalidates the `dependentPaths` and `dependentTags` of the rows it changes,
 * for models registered by name: `dumper.register('IceCream', { dependentPaths(row) { ... } })`.
 *
 * Not seen: `$executeRaw` and `$queryRaw`, and rows the database changes by itself (`ON DELETE
 * CASCADE`, triggers). Invalidate those with `dumper.changed('Model', row)` or
 * `dumper.invalidate(paths)`.
 */
export function prismaDumper(dumper: Dumper, options?: PrismaDumperOptions): PrismaDumperExtension {
  assertDumper(dumper, 'prismaDumper');
  const settings = validate(options);
  const tracker = settings.trackReads ? new ReadTracker(dumper, { maxTagsPerPage: settings.maxTagsPerPage, integration: 'prisma' }) : undefined;
  const scopes = new AsyncLocalStorage<Scope>();
  let warnedUnseen = false;

  return Prisma.defineExtension((client: any) => {
    const models = dataModelOf(client as Record<string, unknown>);
    checkInclude(settings.include, models);
    const writes = new Writes(dumper, models, settings);
    const reads = tracker === undefined ? undefined : new PrismaReads(tracker, models);
    // Reads outside a transaction go through the client as it was before this extension.
    const base = client as Reader;
    // The $transaction below this extension (Prisma's, or another extension's), called with the
    // extended client as `this` so that interactive transactions run through this extension too.
    const transaction = client.$transaction as (this: unknown, ...args: unknown[]) => Promise<unknown>;
    // Prisma's SQLite adapters run every query on one connection: a query outside a transaction
    // sees the transaction's uncommitted rows, so a page rendered from them during the transaction
    // must not outlive a rollback either. Other databases read the last commit from another connection.
    const engine = client._engineConfig as { activeProvider?: unknown; adapter?: { provider?: unknown } } | undefined;
    const oneConnection = engine?.adapter?.provider === 'sqlite' || engine?.activeProvider === 'sqlite';

    /** Where a write reads its rows, and which transaction buffers its invalidation. */
    function context(params: QueryParams): WriteContext {
      const store = scopes.getStore();
      const internal = params.__internalParams;
      // Older and newer clients may not say: then the transaction callback we are in decides.
      const kind = internal === undefined ? (store === undefined ? undefined : store.tx === undefined ? 'batch' : 'itx') : internal.transaction?.kind;
      if (kind === 'itx') {
        if (store?.tx !== undefined) return { reader: store.tx, scope: store };
        if (!warnedUnseen) {
          warnedUnseen = true;
          dumper.log.warn(
            'prisma: a write ran in an interactive transaction whose callback page-dumper did not see start (was $transaction called on a client without the extension?); its pages are invalidated when it runs, not again after the commit',
            { model: params.model, operation: params.operation },
          );
        }
        return { reader: base, scope: undefined };
      }
      if (kind === 'batch') return { reader: base, scope: store?.tx === undefined ? store : undefined };
      // A write outside any transaction commits as it runs: its invalidation is already after the commit.
      return { reader: base, scope: undefined };
    }

    return client.$extends({
      name: 'page-dumper',
      query: {
        $allModels: {
          $allOperations(params: QueryParams) {
            // A fluent call (`findUnique(...).author()`) is its root model's operation, whose answer
            // is the rows at this path: see PrismaReads.handle.
            const path = params.__internalParams?.dataPath;
            const dataPath = Array.isArray(path) ? (path as unknown[]) : undefined;
            if (reads !== undefined && READS.has(params.operation)) return reads.handle(params.model, params.operation, params.args ?? {}, params.query, dataPath);
            return writes.handle(params.model, params.operation, params.args ?? {}, params.query, () => context(params), dataPath);
          },
        },
      },
      client: {
        $transaction(this: unknown, arg: unknown, txOptions?: unknown): Promise<unknown> {
          const outer = scopes.getStore();
          // tx.$transaction(fn) nests (a savepoint): it commits with the enclosing transaction.
          const nested = outer?.tx !== undefined && this === outer.tx;
          const scope: Scope = { tx: undefined, parent: nested ? outer : undefined, pending: [], all: false, deferred: [] };
          const run =
            typeof arg === 'function'
              ? transaction.call(
                  this,
                  (tx: Reader) => {
                    scope.tx = tx;
                    return scopes.run(scope, () => (arg as (tx: Reader) => unknown)(tx));
                  },
                  txOptions,
                )
              : // The queries of a batch run their extensions as the batch starts, in this context.
                scopes.run(scope, () => transaction.call(this, arg, txOptions));
          return run.then(
            async (result) => {
              await writes.settle(scope);
              return result;
            },
            async (error: unknown) => {
              // A rollback: nothing changed, so the buffered invalidations are dropped (but see
              // oneConnection). The error passes through as it came.
              if (oneConnection) {
                await writes.settle(scope).catch((failure: unknown) => {
                  dumper.log.error('prisma: invalidating after a rollback failed', { error: failure as Error });
                });
              }
              throw error;
            },
          );
        },
      },
    });
  }) as PrismaDumperExtension;
}
