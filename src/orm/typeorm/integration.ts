/**
 * The machinery behind `typeormDumper()`: an entity subscriber for the writes TypeORM reports with
 * their rows (save, remove, softRemove, recover, insert, junction rows), and a wrapper around the
 * execution of QueryBuilder writes that carry only criteria (update, delete, softDelete, restore,
 * upsert), which resolves the rows they touch.
 */
import type {
  DataSource,
  EntityManager,
  EntityMetadata,
  EntitySubscriberInterface,
  FindOptionsRelations,
  InsertEvent,
  ObjectLiteral,
  QueryBuilder,
  QueryRunner,
  RecoverEvent,
  RemoveEvent,
  SoftRemoveEvent,
  TransactionCommitEvent,
  TransactionRollbackEvent,
  TransactionStartEvent,
  UpdateEvent,
} from 'typeorm';
import type { Dependents, Dumper } from '../../core/dumper.js';
import type { ModelClass } from '../../core/models.js';
import { linkTags, unknownWriteTags, writeTags, type KeyValues, type ReadTracker, type WrittenRow } from '../reads.js';
import { returnedKey } from './keys.js';

type Column = EntityMetadata['columns'][number];
type Relation = EntityMetadata['relations'][number];
type SelectQueryBuilder = ReturnType<DataSource['createQueryBuilder']>;
type ExpressionMap = QueryBuilder<ObjectLiteral>['expressionMap'];

/** A QueryBuilder as the execution wrapper sees it (its runner is protected in TypeORM's types). */
export interface WriteQueryBuilder {
  readonly expressionMap: ExpressionMap;
  queryRunner?: QueryRunner | undefined;
  setQueryRunner(queryRunner: QueryRunner): unknown;
}

export type Execute = (this: WriteQueryBuilder) => Promise<unknown>;

/** What `relations` resolves to for one entity. */
export type RelationsFor = (metadata: EntityMetadata) => readonly string[];

export interface Settings {
  readonly relations: RelationsFor;
  readonly maxRows: number;
  readonly invalidateOnRollback: boolean;
  /** With `trackReads`: every entity's writes invalidate the tags its reads put on pages. */
  readonly reads: ReadTracker | undefined;
}

/** Marks a point in a transaction's buffer where every page must be invalidated. */
const ALL = Symbol('every page');
type Entry = Dependents | typeof ALL;
type Phase = 'before' | 'after';

/** What the integration keeps per query runner (one database connection, one transaction). */
interface RunnerState {
  /** Invalidations made inside the open transaction, replayed when the outermost one commits. */
  readonly entries: Entry[];
  /** `entries.length` when each (nested) transaction started, to drop a savepoint's share. */
  readonly marks: number[];
  /** Dependents computed in a before-event, waiting for the after-event of the same write. */
  readonly pending: Map<string, Dependents[]>;
  /**
   * Rows loaded during one side of a write (before or after it), shared by the events of that
   * side: a save that changes ten junction rows of one flavour loads the flavour once.
   */
  readonly memo: Map<string, Promise<ObjectLiteral | null>>;
  phase: Phase;
  /** Criteria writes being executed on this runner, by entity: their id-less events are handled. */
  readonly bulk: Map<EntityMetadata, number>;
}

/** Rows are loaded this many ids at a time. */
const CHUNK = 100;

export class TypeormIntegration implements EntitySubscriberInterface {
  readonly #dumper: Dumper;
  readonly #dataSource: DataSource;
  readonly #settings: Settings;
  readonly #states = new WeakMap<QueryRunner, RunnerState>();
  readonly #relations = new WeakMap<EntityMetadata, FindOptionsRelations<ObjectLiteral>>();
  /** The `valuesSet` objects of update and upsert QueryBuilders being executed by `execute()`. */
  readonly #handled = new WeakSet<object>();
  /** The data source's SelectQueryBuilder class (from its own copy of TypeORM). */
  #Select: (new (from: WriteQueryBuilder) => SelectQueryBuilder) | undefined;
  #closed = false;

  constructor(dumper: Dumper, dataSource: DataSource, settings: Settings) {
    this.#dumper = dumper;
    this.#dataSource = dataSource;
    this.#settings = settings;
  }

  close(): void {
    this.#closed = true;
  }

  // ---------------------------------------------------------------- subscriber: inserts

  beforeInsert(event: InsertEvent<ObjectLiteral>): void {
    if (!this.#closed && this.#watched(event.metadata)) this.#phase(event.queryRunner, 'before');
  }

  async afterInsert(event: InsertEvent<ObjectLiteral>): Promise<void> {
    const { metadata, queryRunner: runner } = event;
    if (this.#closed || !this.#watched(metadata)) return;
    // An upsert executed by execute(), which resolves its rows by their conflict keys.
    if (event.entity != null && this.#handled.has(event.entity)) return;
    this.#phase(runner, 'after');
    await this.#after(runner, `an insert into ${metadata.name}`, async () => {
      if (metadata.isJunction) return this.#junctionDependents(event.manager, runner, metadata, event.entityId ?? event.entity, 'after');
      const id = idOf(metadata, event.entity, event.entityId);
      if (id === undefined) return undefined;
      const row = await this.#loadRow(event.manager, runner, metadata, id, 'after');
      return row === null ? [] : this.#dependentsOf(metadata, [row]);
    });
  }

  // ---------------------------------------------------------------- subscriber: updates

  async beforeUpdate(event: UpdateEvent<ObjectLiteral>): Promise<void> {
    await this.#beforeChange(event, 'update', event.databaseEntity as ObjectLiteral | undefined);
  }

  async afterUpdate(event: UpdateEvent<ObjectLiteral>): Promise<void> {
    await this.#afterChange(event, 'update', event.entity, event.databaseEntity as ObjectLiteral | undefined, undefined);
  }

  async beforeSoftRemove(event: SoftRemoveEvent<ObjectLiteral>): Promise<void> {
    await this.#beforeChange(event, 'soft-remove', event.databaseEntity ?? event.entity, event.entityId);
  }

  async afterSoftRemove(event: SoftRemoveEvent<ObjectLiteral>): Promise<void> {
    await this.#afterChange(event, 'soft-remove', event.entity, event.databaseEntity, event.entityId);
  }

  async beforeRecover(event: RecoverEvent<ObjectLiteral>): Promise<void> {
    await this.#beforeChange(event, 'recover', event.databaseEntity ?? event.entity, event.entityId);
  }

  async afterRecover(event: RecoverEvent<ObjectLiteral>): Promise<void> {
    await this.#afterChange(event, 'recover', event.entity, event.databaseEntity, event.entityId);
  }

  /**
   * The row as it is before the write, with its relations: a changed slug must also invalidate
   * the old page, and a changed many-to-one the page of the row it pointed at.
   */
  async #beforeChange(event: ChangeEvent, what: string, databaseEntity: ObjectLiteral | undefined, entityId?: unknown): Promise<void> {
    const { metadata, queryRunner: runner } = event;
    if (this.#closed || !this.#watched(metadata)) return;
    this.#phase(runner, 'before');
    if (metadata.isJunction || databaseEntity == null) return; // a criteria write: execute() has it
    const id = idOf(metadata, databaseEntity, entityId);
    if (id === undefined) return;
    const row = (await this.#loadRow(event.manager, runner, metadata, id, 'before')) ?? snapshot(metadata, databaseEntity);
    this.#state(runner).pending.set(pendingKey(what, metadata, id), await this.#dependentsOf(metadata, [row]));
  }

  async #afterChange(
    event: ChangeEvent,
    what: string,
    entity: ObjectLiteral | undefined,
    databaseEntity: ObjectLiteral | undefined,
    entityId: unknown,
  ): Promise<void> {
    const { metadata, queryRunner: runner } = event;
    if (this.#closed || !this.#watched(metadata)) return;
    if (databaseEntity == null) {
      // A QueryBuilder update carries its SET values and no rows; execute() resolved them.
      if ((entity != null && this.#handled.has(entity)) || this.#inBulk(runner, metadata)) return;
      if (entity == null && entityId === undefined) {
        this.#phase(runner, 'after');
        return this.#after(runner, `${an(what)} of ${metadata.name} that TypeORM reported without its rows`, async () => undefined);
      }
    }
    this.#phase(runner, 'after');
    await this.#after(runner, `${an(what)} of ${metadata.name}`, async () => {
      const before = databaseEntity == null ? undefined : idOf(metadata, databaseEntity, entityId);
      const id = idOf(metadata, entity, undefined) ?? before;
      if (id === undefined) return undefined;
      const state = this.#state(runner);
      const key = pendingKey(what, metadata, before ?? id);
      const old = state.pending.get(key);
      state.pending.delete(key);
      // Without the row as it was (no before-event), its old pages are unknown.
      if (old === undefined && databaseEntity == null) return undefined;
      const row = await this.#loadRow(event.manager, runner, metadata, id, 'after');
      return [...(old ?? []), ...(row === null ? [] : await this.#dependentsOf(metadata, [row]))];
    });
  }

  // ---------------------------------------------------------------- subscriber: removes

  async beforeRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> {
    const { metadata, queryRunner: runner } = event;
    if (this.#closed || !this.#watched(metadata)) return;
    this.#phase(runner, 'before');
    const state = this.#state(runner);
    if (metadata.isJunction) {
      // m2m_changed pre_remove: both rows as they are while still linked.
      if (event.entityId == null) return;
      const deps = await this.#junctionDependents(event.manager, runner, metadata, event.entityId, 'before');
      if (deps !== undefined) state.pending.set(pendingKey('remove', metadata, event.entityId), deps);
      return;
    }
    const data = event.databaseEntity ?? event.entity;
    const id = idOf(metadata, data, event.entityId);
    if (id === undefined) return; // a criteria delete: execute() has it
    // pre_delete: after the delete nothing is left to tell which pages showed the row.
    const row = (await this.#loadRow(event.manager, runner, metadata, id, 'before')) ?? (data == null ? null : snapshot(metadata, data));
    if (row !== null) {
      const gone = await this.#deleteDependents(event.manager, metadata, [row]);
      state.pending.set(pendingKey('remove', metadata, id), [...(await this.#dependentsOf(metadata, [row])), ...gone]);
    }
  }

  async afterRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> {
    const { metadata, queryRunner: runner } = event;
    if (this.#closed || !this.#watched(metadata)) return;
    const data = event.databaseEntity ?? event.entity;
    const identified = metadata.isJunction ? event.entityId != null : idOf(metadata, data, event.entityId) !== undefined;
    if (!identified && this.#inBulk(runner, metadata)) return;
    this.#phase(runner, 'after');
    await this.#after(runner, `a delete from ${metadata.name}`, async () => {
      if (!identified) return undefined;
      const state = this.#state(runner);
      if (metadata.isJunction) {
        // Both rows as they were while linked (m2m pre_remove). Their pages as they are now need
        // nothing more: that is what adding the link back would change, which is what the rows'
        // dependentPaths() name after an insert.
        const key = pendingKey('remove', metadata, event.entityId);
        const old = state.pending.get(key);
        state.pending.delete(key);
        return old;
      }
      const key = pendingKey('remove', metadata, idOf(metadata, data, event.entityId));
      const old = state.pending.get(key);
      state.pending.delete(key);
      return old ?? (data == null ? undefined : this.#dependentsOf(metadata, [snapshot(metadata, data)]));
    });
  }

  // ---------------------------------------------------------------- subscriber: transactions

  afterTransactionStart(event: TransactionStartEvent): void {
    if (this.#closed) return;
    const state = this.#state(event.queryRunner);
    state.marks.push(state.entries.length);
  }

  async afterTransactionCommit(event: TransactionCommitEvent): Promise<void> {
    if (this.#closed) return;
    const runner = event.queryRunner;
    const state = this.#state(runner);
    state.marks.pop();
    if (runner.isTransactionActive) return; // a savepoint was released: its writes wait for the outer commit
    const entries = state.entries.splice(0);
    this.#reset(state);
    // The committed rows are now visible to every reader: a page rendered from the old rows
    // between the write and this commit is dropped now.
    await this.#replay(entries, 'after the commit');
  }

  async afterTransactionRollback(event: TransactionRollbackEvent): Promise<void> {
    if (this.#closed) return;
    const runner = event.queryRunner;
    const state = this.#state(runner);
    const dropped = state.entries.splice(state.marks.pop() ?? 0);
    if (!runner.isTransactionActive) this.#reset(state);
    // Readers on other connections never saw the rolled-back rows, so the pages they stored are
    // right. On a connection shared with readers (SQLite), they may have seen them.
    if (this.#settings.invalidateOnRollback) await this.#replay(dropped, 'after the rollback');
  }

  // ---------------------------------------------------------------- QueryBuilder writes

  /**
   * Runs a QueryBuilder write (update, delete, softDelete, restore, or an upsert) and invalidates
   * the pages of the rows it touches: they are found with the same criteria, on the same
   * connection and in the same transaction, before the write; updated rows are loaded again after it.
   */
  async execute(qb: WriteQueryBuilder, original: Execute): Promise<unknown> {
    const map = qb.expressionMap;
    const metadata = map.mainAlias?.hasMetadata ? map.mainAlias.metadata : undefined;
    // With listeners off, the caller reports the write itself: TypeORM's persistence (save,
    // remove...) runs its writes that way and sends entity events instead.
    if (this.#closed || map.callListeners === false || metadata === undefined || !this.#watched(metadata)) return original.call(qb);
    const type = map.queryType;
    if (type === 'insert' && (map.onUpdate == null || metadata.isJunction)) return original.call(qb);
    let own: QueryRunner | undefined;
    if (qb.queryRunner === undefined) {
      own = this.#dataSource.createQueryRunner();
      qb.setQueryRunner(own);
    }
    const runner = qb.queryRunner!;
    const state = this.#state(runner);
    state.bulk.set(metadata, (state.bulk.get(metadata) ?? 0) + 1);
    const values = [map.valuesSet].flat().filter((v): v is ObjectLiteral => v != null && typeof v === 'object');
    for (const v of values) this.#handled.add(v);
    try {
      if (metadata.isJunction) {
        if (type !== 'delete') return await this.#unresolvedWrite(qb, original, runner, `${an(type)} of the join table ${metadata.tableName}`);
        return await this.#junctionWrite(qb, original, runner, metadata);
      }
      if (type === 'insert') return await this.#upsert(qb, original, runner, metadata, values);
      return await this.#criteriaWrite(qb, original, runner, metadata, type);
    } finally {
      for (const v of values) this.#handled.delete(v);
      const n = (state.bulk.get(metadata) ?? 1) - 1;
      if (n === 0) state.bulk.delete(metadata);
      else state.bulk.set(metadata, n);
      if (own !== undefined) {
        qb.queryRunner = undefined;
        await own.release();
      }
    }
  }

  async #criteriaWrite(qb: WriteQueryBuilder, original: Execute, runner: QueryRunner, metadata: EntityMetadata, type: string): Promise<unknown> {
    const what = `${an(type)} of ${metadata.name} by criteria`;
    const ids = await this.#matching(qb, metadata);
    if (ids === undefined) return this.#unresolvedWrite(qb, original, runner, `${what} (more than maxRows: ${this.#settings.maxRows} rows)`);
    const manager = runner.manager;
    const rows = await this.#loadRows(manager, metadata, ids);
    const before = await this.#dependentsOf(metadata, rows);
    // A delete takes its join-table rows with it (ON DELETE CASCADE): the rows on the other side
    // of each many-to-many relation change too, as for a removal of the link (m2m pre_remove).
    if (type === 'delete') {
      for (const [side, ids] of partnersOf(metadata, rows)) before.push(...(await this.#dependentsOfIds(manager, side, ids, false)));
      before.push(...(await this.#deleteDependents(manager, metadata, rows)));
    }
    const result = await original.call(qb);
    await this.#after(runner, what, async () => {
      const affected = affectedOf(result);
      if (affected !== undefined && affected > ids.length) return `${what}, which touched more rows than matched just before it,`;
      const after: Dependents[] = [];
      if (type !== 'delete') {
        const now = await this.#loadRows(manager, metadata, ids);
        // A primary key changed: the rows as they are now cannot be found.
        if (now.length < rows.length) return `${what}, after which some of its rows were gone,`;
        after.push(...(await this.#dependentsOf(metadata, now)));
      }
      return [...before, ...after];
    });
    return result;
  }

  async #junctionWrite(qb: WriteQueryBuilder, original: Execute, runner: QueryRunner, junction: EntityMetadata): Promise<unknown> {
    const what = `a delete from the join table ${junction.tableName}`;
    const links = await this.#matchingLinks(qb, junction);
    if (links === undefined) return this.#unresolvedWrite(qb, original, runner, `${what} (more than maxRows: ${this.#settings.maxRows} rows)`);
    const manager = runner.manager;
    const sides = sidesOf(junction, links);
    if (sides === undefined) return this.#unresolvedWrite(qb, original, runner, what);
    const before: Dependents[] = [];
    if (this.#settings.reads !== undefined) before.push(readDependents(junction, junctionTags(junction, links)));
    for (const [side, ids] of sides) before.push(...(await this.#dependentsOfIds(manager, side, ids, false)));
    const result = await original.call(qb);
    await this.#after(runner, what, async () => {
      const affected = affectedOf(result);
      return affected !== undefined && affected > links.length ? `${what}, which touched more rows than matched just before it,` : before;
    });
    return result;
  }

  /** `orUpdate()` (and `repository.upsert()`): the rows it may overwrite, found by their conflict keys. */
  async #upsert(qb: WriteQueryBuilder, original: Execute, runner: QueryRunner, metadata: EntityMetadata, values: ObjectLiteral[]): Promise<unknown> {
    const what = `an upsert into ${metadata.name}`;
    const where = conflictKeys(metadata, qb.expressionMap, values);
    if (where === undefined) return this.#unresolvedWrite(qb, original, runner, what);
    const manager = runner.manager;
    const before = await this.#dependentsOf(metadata, await this.#loadRows(manager, metadata, where));
    const result = await original.call(qb);
    await this.#after(runner, what, async () => [
      ...before,
      ...(await this.#dependentsOf(metadata, await this.#loadRows(manager, metadata, where))),
    ]);
    return result;
  }

  async #unresolvedWrite(qb: WriteQueryBuilder, original: Execute, runner: QueryRunner, what: string): Promise<unknown> {
    const result = await original.call(qb);
    const map = qb.expressionMap;
    await this.#fallback(runner, what, map.mainAlias?.hasMetadata ? map.mainAlias.metadata : undefined);
    return result;
  }

  /** The ids of the rows a criteria write will touch, or `undefined` when there are more than `maxRows`. */
  async #matching(qb: WriteQueryBuilder, metadata: EntityMetadata): Promise<ObjectLiteral[] | undefined> {
    const select = this.#selectFrom(qb, metadata.primaryColumns);
    const rows = (await select.getMany()) as ObjectLiteral[];
    if (rows.length > this.#settings.maxRows) return undefined;
    const ids: ObjectLiteral[] = [];
    for (const row of rows) {
      const id = metadata.getEntityIdMap(row);
      if (id !== undefined) ids.push(id);
    }
    return ids;
  }

  /** The join-table rows a delete will remove, keyed by column property name. */
  async #matchingLinks(qb: WriteQueryBuilder, junction: EntityMetadata): Promise<ObjectLiteral[] | undefined> {
    const columns = junction.columns;
    const raw = (await this.#selectFrom(qb, columns, true).getRawMany()) as ObjectLiteral[];
    if (raw.length > this.#settings.maxRows) return undefined;
    return raw.map((r) => Object.fromEntries(columns.map((c, i) => [c.propertyName, r[`pd_${i}`]])));
  }

  /** A SELECT with the write's FROM, WHERE, ORDER BY and LIMIT, including soft-deleted rows. */
  #selectFrom(qb: WriteQueryBuilder, columns: readonly Column[], aliased = false): SelectQueryBuilder {
    // Made from the write, a SelectQueryBuilder clones its expression map: the write is left as it was.
    this.#Select ??= this.#dataSource.createQueryBuilder().constructor as new (from: WriteQueryBuilder) => SelectQueryBuilder;
    const select = new this.#Select(qb);
    const map = select.expressionMap;
    map.queryType = 'select';
    const alias = map.mainAlias!.name;
    map.selects = columns.map((c, i) => ({ selection: `${alias}.${c.propertyPath}`, ...(aliased ? { aliasName: `pd_${i}` } : {}) }));
    select.withDeleted();
    const max = this.#settings.maxRows;
    if (Number.isFinite(max) && (map.limit === undefined || map.limit > max)) select.limit(max + 1);
    return select;
  }

  // ---------------------------------------------------------------- rows and dependents

  /** The registered model of an entity: its class (or an ancestor), else its name. */
  #modelOf(metadata: EntityMetadata): ModelClass | string | undefined {
    let c: unknown = metadata.target;
    while (typeof c === 'function' && c !== Function.prototype) {
      if (this.#dumper.isRegistered(c)) return c as ModelClass;
      c = Object.getPrototypeOf(c);
    }
    if (this.#dumper.isRegistered(metadata.name)) return metadata.name;
    if (metadata.targetName && this.#dumper.isRegistered(metadata.targetName)) return metadata.targetName;
    return undefined;
  }

  #watched(metadata: EntityMetadata): boolean {
    if (this.#settings.reads !== undefined) return true;
    if (!metadata.isJunction) return this.#modelOf(metadata) !== undefined;
    for (const columns of [metadata.ownerColumns, metadata.inverseColumns]) {
      const side = columns[0]?.referencedColumn?.entityMetadata;
      if (side !== undefined && this.#modelOf(side) !== undefined) return true;
    }
    return false;
  }

  /**
   * The dependents of rows a write changed: their model's, and with `trackReads` the tags of their
   * reads (`reads: false` for the rows on the other side of a changed link, whose row tags the
   * link's own tags name: their lists did not change).
   */
  async #dependentsOf(metadata: EntityMetadata, rows: readonly ObjectLiteral[], reads = true): Promise<Dependents[]> {
    const model = this.#modelOf(metadata);
    const out: Dependents[] = [];
    if (reads && this.#settings.reads !== undefined && rows.length > 0) out.push(readDependents(metadata, writeTags(metadata.tablePath, rows.map((r) => writtenRow(metadata, r)))));
    if (model === undefined) return out;
    for (const row of rows) out.push(await this.#dumper.dependentsOf(model, row));
    return out;
  }

  /**
   * With `trackReads`, what a delete of rows of `metadata` also changes without TypeORM saying so,
   * found before the delete, transitively:
   * - the join-table rows that link the deleted rows (`ON DELETE CASCADE`): the links' tags;
   * - the rows whose foreign key references a deleted row (declared on either side) with
   *   `ON DELETE CASCADE`: written rows, deleted in turn (their links and their own dependents
   *   follow, a self-referencing tree included); with `SET NULL`: written rows, and what an
   *   `ON UPDATE` action of a foreign key referencing the nulled column changes.
   * At most `maxRows` rows and links in all; past that, for a foreign key of several columns, or
   * for `DEFAULT` (SET DEFAULT), everything read from the tables the rest may reach.
   */
  async #deleteDependents(manager: EntityManager, metadata: EntityMetadata, rows: readonly ObjectLiteral[]): Promise<Dependents[]> {
    if (this.#settings.reads === undefined || rows.length === 0) return [];
    const out: Dependents[] = [];
    const unknown = new Set<EntityMetadata>();
    let budget = this.#settings.maxRows;
    const seen = new Map<EntityMetadata, Set<string>>();
    const fresh = (m: EntityMetadata, found: readonly ObjectLiteral[]): ObjectLiteral[] => {
      let ids = seen.get(m);
      if (ids === undefined) seen.set(m, (ids = new Set()));
      const out: ObjectLiteral[] = [];
      for (const row of found) {
        const key = idKey(m.getEntityIdMap(row));
        if (ids.has(key)) continue;
        ids.add(key);
        out.push(row);
      }
      return out;
    };
    let level: [EntityMetadata, ObjectLiteral[]][] = [[metadata, fresh(metadata, rows)]];
    while (level.length > 0) {
      const next: [EntityMetadata, ObjectLiteral[]][] = [];
      for (const [parent, deleted] of level) {
        if (unknown.has(parent) || deleted.length === 0) continue;
        const ids = deleted.map((row) => parent.getEntityIdMap(row)).filter((id): id is ObjectLiteral => id !== undefined);
        if (ids.length < deleted.length) {
          this.#cascadeReach(parent, 'delete', unknown);
          continue;
        }
        for (const junction of this.#dataSource.entityMetadatas) {
          if (!junction.isJunction || unknown.has(junction)) continue;
          const sides = [junction.ownerColumns, junction.inverseColumns].filter((columns) => columns[0]?.referencedColumn?.entityMetadata.tablePath === parent.tablePath);
          if (sides.length === 0) continue;
          const links = await this.#linksOf(manager, junction, sides, ids, budget);
          if (links === undefined) unknown.add(junction);
          else if (links.length > 0) {
            budget -= links.length;
            out.push(readDependents(junction, junctionTags(junction, links)));
          }
        }
        for (const relation of referencing(this.#dataSource, parent)) {
          const child = relation.entityMetadata;
          const action = relation.onDelete;
          if (action !== 'CASCADE' && action !== 'SET NULL' && action !== 'DEFAULT') continue;
          if (unknown.has(child)) continue;
          const kind = action === 'CASCADE' ? 'delete' : 'update';
          const found = action === 'DEFAULT' || relation.joinColumns.length !== 1 ? undefined : await this.#childrenOf(manager, relation, ids, budget);
          if (found === undefined) {
            this.#cascadeReach(child, kind, unknown, relation.joinColumns);
            continue;
          }
          budget -= found.length;
          if (found.length === 0) continue;
          out.push(readDependents(child, writeTags(child.tablePath, found.map((r) => writtenRow(child, r)))));
          if (kind === 'delete') next.push([child, fresh(child, found)]);
          // The nulled column may be what another foreign key references (ON UPDATE CASCADE / SET NULL).
          else for (const m of updateReach(this.#dataSource, relation.joinColumns)) this.#cascadeReach(m.entityMetadata, 'update', unknown, m.joinColumns);
        }
      }
      level = next;
    }
    for (const m of unknown) out.push(readDependents(m, unknownWriteTags(m.tablePath)));
    return out;
  }

  /**
   * Marks `metadata` unknown, and every table its rows' deletion (or the update of `columns`)
   * may change in the database in turn: their links, and the rows referencing them with an action.
   */
  #cascadeReach(metadata: EntityMetadata, kind: 'delete' | 'update', unknown: Set<EntityMetadata>, columns: readonly Column[] = []): void {
    if (kind === 'update') {
      unknown.add(metadata);
      for (const r of updateReach(this.#dataSource, columns)) if (!unknown.has(r.entityMetadata)) this.#cascadeReach(r.entityMetadata, 'update', unknown, r.joinColumns);
      return;
    }
    if (unknown.has(metadata)) return;
    unknown.add(metadata);
    for (const junction of this.#dataSource.entityMetadatas) {
      if (junction.isJunction && [junction.ownerColumns, junction.inverseColumns].some((c) => c[0]?.referencedColumn?.entityMetadata.tablePath === metadata.tablePath)) unknown.add(junction);
    }
    for (const relation of referencing(this.#dataSource, metadata)) {
      const action = relation.onDelete;
      if (action === 'CASCADE') this.#cascadeReach(relation.entityMetadata, 'delete', unknown);
      else if (action === 'SET NULL' || action === 'DEFAULT') this.#cascadeReach(relation.entityMetadata, 'update', unknown, relation.joinColumns);
    }
  }

  /** The rows whose foreign key (`relation`, one column) names one of `ids`, with their to-one relations; `undefined` past `budget`. */
  async #childrenOf(manager: EntityManager, relation: Relation, ids: readonly ObjectLiteral[], budget: number): Promise<ObjectLiteral[] | undefined> {
    const child = relation.entityMetadata;
    const relations: Record<string, true> = {};
    for (const r of child.relations) if ((r.isManyToOne || r.isOneToOneOwner) && !r.isLazy) relations[r.propertyPath] = true;
    const found: ObjectLiteral[] = [];
    for (let i = 0; i < ids.length; i += CHUNK) {
      if (found.length > budget) break;
      const where = ids.slice(i, i + CHUNK).map((id) => ({ [relation.propertyPath]: id }));
      const take = Number.isFinite(budget) ? { take: budget - found.length + 1 } : {};
      found.push(...(await manager.find<ObjectLiteral>(child.target, { where, relations, withDeleted: true, ...take })));
    }
    return found.length > budget ? undefined : found;
  }

  /** The join-table rows linking one of `ids` on one of `sides`, by column property name; `undefined` past `budget`. */
  async #linksOf(
    manager: EntityManager,
    junction: EntityMetadata,
    sides: readonly (readonly Column[])[],
    ids: readonly ObjectLiteral[],
    budget: number,
  ): Promise<ObjectLiteral[] | undefined> {
    const columns = junction.columns;
    const links: ObjectLiteral[] = [];
    const where: ObjectLiteral[] = [];
    for (const side of sides) {
      for (const id of ids) where.push(Object.fromEntries(side.map((c) => [c.propertyPath, c.referencedColumn!.getEntityValue(id)])));
    }
    for (let i = 0; i < where.length; i += CHUNK) {
      if (links.length > budget) break;
      const select = manager.createQueryBuilder().from(junction.tablePath, 'pd_j').select([]).where(where.slice(i, i + CHUNK));
      columns.forEach((c, n) => select.addSelect(`pd_j.${c.propertyPath}`, `pd_${n}`));
      if (Number.isFinite(budget)) select.limit(budget - links.length + 1);
      const raw = (await select.getRawMany()) as ObjectLiteral[];
      links.push(...raw.map((r) => Object.fromEntries(columns.map((c, n) => [c.propertyName, r[`pd_${n}`]]))));
    }
    return links.length > budget ? undefined : links;
  }

  /** The dependents of rows by id, loaded now; nothing (and no query) for an entity that is not registered. */
  async #dependentsOfIds(manager: EntityManager, metadata: EntityMetadata, ids: readonly ObjectLiteral[], reads = true): Promise<Dependents[]> {
    if (ids.length === 0 || (this.#modelOf(metadata) === undefined && !(reads && this.#settings.reads !== undefined))) return [];
    return this.#dependentsOf(metadata, await this.#loadRows(manager, metadata, ids), reads);
  }

  /** Both rows a join-table row links (m2m_changed for each side), as they are now. */
  async #junctionDependents(
    manager: EntityManager,
    runner: QueryRunner,
    junction: EntityMetadata,
    link: unknown,
    phase: Phase,
  ): Promise<Dependents[] | undefined> {
    if (link == null || typeof link !== 'object') return undefined;
    const sides = sidesOf(junction, [link as ObjectLiteral]);
    if (sides === undefined) return undefined;
    const out: Dependents[] = [];
    if (this.#settings.reads !== undefined) out.push(readDependents(junction, junctionTags(junction, [link as ObjectLiteral])));
    for (const [side, [id]] of sides) {
      if (this.#modelOf(side) === undefined) continue;
      // Gone with its owner (remove() deletes the join rows first): the owner's own
      // before-delete snapshot covers its pages.
      const row = await this.#loadRow(manager, runner, side, id!, phase);
      if (row !== null) out.push(...(await this.#dependentsOf(side, [row], false)));
    }
    return out;
  }

  #relationsOf(metadata: EntityMetadata): FindOptionsRelations<ObjectLiteral> {
    let relations = this.#relations.get(metadata);
    if (relations === undefined) {
      relations = {};
      for (const path of this.#settings.relations(metadata)) {
        const first = path.split('.')[0]!;
        if (metadata.findRelationWithPropertyPath(first) === undefined) {
          throw new TypeError(`page-dumper: typeormDumper() option "relations" names "${path}" for ${metadata.name}, which has no relation "${first}"`);
        }
        let node = relations as Record<string, unknown>;
        const parts = path.split('.');
        parts.forEach((part, i) => {
          if (i === parts.length - 1) node[part] ??= true;
          else node = (node[part] = typeof node[part] === 'object' ? node[part] : {}) as Record<string, unknown>;
        });
      }
      // trackReads needs every row's foreign keys (its key tags): its to-one relations are loaded too.
      if (this.#settings.reads !== undefined) {
        for (const r of metadata.relations) {
          if ((r.isManyToOne || r.isOneToOneOwner) && !r.isLazy) (relations as Record<string, unknown>)[r.propertyPath] ??= true;
        }
      }
      this.#relations.set(metadata, relations);
    }
    return relations;
  }

  /** One row with its relations, inside the write's transaction, soft-deleted or not. */
  #loadRow(manager: EntityManager, runner: QueryRunner, metadata: EntityMetadata, id: ObjectLiteral, phase: Phase): Promise<ObjectLiteral | null> {
    const state = this.#state(runner);
    if (state.phase !== phase) this.#phase(runner, phase);
    const key = `${metadata.name}|${idKey(id)}`;
    let row = state.memo.get(key);
    if (row === undefined) {
      row = this.#loadRows(manager, metadata, [id]).then((rows) => rows[0] ?? null);
      state.memo.set(key, row);
      row.catch(() => state.memo.delete(key));
    }
    return row;
  }

  async #loadRows(manager: EntityManager, metadata: EntityMetadata, where: readonly ObjectLiteral[]): Promise<ObjectLiteral[]> {
    const rows: ObjectLiteral[] = [];
    const relations = this.#relationsOf(metadata);
    for (let i = 0; i < where.length; i += CHUNK) {
      const chunk = where.slice(i, i + CHUNK);
      rows.push(...(await manager.find<ObjectLiteral>(metadata.target, { where: chunk.length === 1 ? chunk[0] : chunk, relations, withDeleted: true })));
    }
    return rows;
  }

  // ---------------------------------------------------------------- invalidation

  /**
   * Computes what a write changed and invalidates it now; inside a transaction, again when the
   * outermost one commits. `compute` resolves `undefined` (or a better description of the write)
   * when its rows cannot be told: then every page goes. An error (a `dependentPaths()` that returns a string) also invalidates
   * every page, since the write may stand, and is rethrown to the caller of the write.
   */
  async #after(runner: QueryRunner, what: string, compute: () => Promise<Dependents[] | string | undefined>): Promise<void> {
    let deps: Dependents[] | string | undefined;
    try {
      deps = await compute();
    } catch (error) {
      await this.#fallback(runner, `${what} (${(error as Error)?.message ?? String(error)})`);
      throw error;
    }
    if (deps === undefined || typeof deps === 'string') return this.#fallback(runner, deps ?? what);
    if (deps.length === 0) return;
    await this.#dumper.invalidateDependents(deps);
    if (runner.isTransactionActive) this.#state(runner).entries.push(...deps);
  }

  /**
   * A write whose rows are unknown. With `trackReads`, for an entity that is not registered (and a
   * join table whose sides are not), everything read from its table; else every page.
   */
  async #fallback(runner: QueryRunner, what: string, metadata?: EntityMetadata): Promise<void> {
    const tables = metadata === undefined ? undefined : this.#unknownTables(metadata);
    if (tables !== undefined) {
      const deps = [readDependents(metadata!, tables.flatMap(unknownWriteTags))];
      if (this.#dumper.log.debugEnabled) this.#dumper.log.debug(`typeorm: cannot tell which rows ${what} changed; invalidating what pages read from its tables`, { tables });
      await this.#dumper.invalidateDependents(deps);
      if (runner.isTransactionActive) this.#state(runner).entries.push(...deps);
      return;
    }
    this.#dumper.log.warn(`typeorm: cannot tell which rows ${what} changed; invalidating every page`, {});
    await this.#dumper.invalidateAll();
    if (runner.isTransactionActive) this.#state(runner).entries.push(ALL);
  }

  async #replay(entries: Entry[], when: string): Promise<void> {
    if (entries.length === 0) return;
    try {
      if (entries.includes(ALL)) await this.#dumper.invalidateAll();
      else await this.#dumper.invalidateDependents(entries as Dependents[]);
    } catch (error) {
      // The transaction has ended: failing its commit would not undo it.
      this.#dumper.log.error(`typeorm: invalidating ${when} failed`, { error: error as Error });
    }
  }

  // ---------------------------------------------------------------- per-runner state

  #state(runner: QueryRunner): RunnerState {
    let state = this.#states.get(runner);
    if (state === undefined) {
      state = { entries: [], marks: [], pending: new Map(), memo: new Map(), phase: 'before', bulk: new Map() };
      this.#states.set(runner, state);
    }
    return state;
  }

  /** Rows loaded on one side of a write are not reused on the other side. */
  #phase(runner: QueryRunner, phase: Phase): void {
    const state = this.#state(runner);
    if (state.phase !== phase) {
      state.phase = phase;
      state.memo.clear();
    }
  }

  #reset(state: RunnerState): void {
    state.marks.length = 0;
    state.pending.clear();
    state.memo.clear();
  }

  /** The tables whose table tags cover an unknown write of `metadata`, or `undefined` when only every page does. */
  #unknownTables(metadata: EntityMetadata): string[] | undefined {
    if (this.#settings.reads === undefined) return undefined;
    if (!metadata.isJunction) return this.#modelOf(metadata) === undefined ? [metadata.tablePath] : undefined;
    const tables = [metadata.tablePath];
    for (const columns of [metadata.ownerColumns, metadata.inverseColumns]) {
      const side = columns[0]?.referencedColumn?.entityMetadata;
      if (side === undefined || this.#modelOf(side) !== undefined) return undefined;
      tables.push(side.tablePath);
    }
    return tables;
  }

  #inBulk(runner: QueryRunner, metadata: EntityMetadata): boolean {
    return (this.#states.get(runner)?.bulk.get(metadata) ?? 0) > 0;
  }
}

type ChangeEvent = UpdateEvent<ObjectLiteral> | SoftRemoveEvent<ObjectLiteral> | RecoverEvent<ObjectLiteral>;

// ---------------------------------------------------------------- ids, keys and join rows

function an(word: string): string {
  return `${/^[aeiou]/.test(word) ? 'an' : 'a'} ${word}`;
}

function isObject(value: unknown): value is ObjectLiteral {
  return value !== null && typeof value === 'object';
}

/** A row's id map, from the row or from the event's `entityId` (a bare value for a single key). */
function idOf(metadata: EntityMetadata, entity: unknown, entityId: unknown): ObjectLiteral | undefined {
  if (isObject(entity)) {
    const id = metadata.getEntityIdMap(entity);
    if (id !== undefined) return id;
  }
  if (entityId == null) return undefined;
  if (isObject(entityId) && !(entityId instanceof Date)) return metadata.getEntityIdMap(entityId);
  const [primary, ...more] = metadata.primaryColumns;
  return primary !== undefined && more.length === 0 ? primary.createValueMap(entityId) : undefined;
}

function idKey(id: unknown): string {
  if (!isObject(id) || id instanceof Date) return String(id);
  return Object.keys(id)
    .sort()
    .map((k) => `${k}=${idKey(id[k])}`)
    .join('&');
}

function pendingKey(what: string, metadata: EntityMetadata, id: unknown): string {
  return `${what}|${metadata.name}|${idKey(id)}`;
}

/** A stand-in for a row that cannot be loaded, with its entity's prototype (so `changed()` finds the model). */
function snapshot(metadata: EntityMetadata, data: ObjectLiteral): ObjectLiteral {
  return Object.assign(metadata.create(), data);
}

function mergeInto(target: ObjectLiteral, source: ObjectLiteral): ObjectLiteral {
  for (const [k, v] of Object.entries(source)) {
    target[k] = isObject(v) && isObject(target[k]) && !(v instanceof Date) ? mergeInto(target[k] as ObjectLiteral, v) : v;
  }
  return target;
}

/**
 * The rows a join-table row links, grouped by entity and without repeats: for each side, the
 * referenced primary key values (`{ iceCreamId: 1, sizeId: 2 }` -> IceCream { id: 1 }, Size { id: 2 }).
 */
function sidesOf(junction: EntityMetadata, links: readonly ObjectLiteral[]): Map<EntityMetadata, ObjectLiteral[]> | undefined {
  const sides = new Map<EntityMetadata, Map<string, ObjectLiteral>>();
  for (const link of links) {
    for (const columns of [junction.ownerColumns, junction.inverseColumns]) {
      const side = columns[0]?.referencedColumn?.entityMetadata;
      if (side === undefined) return undefined;
      const id: ObjectLiteral = {};
      for (const column of columns) {
        const value = link[column.propertyName] ?? link[column.databaseName];
        if (value == null || column.referencedColumn === undefined) return undefined;
        mergeInto(id, column.referencedColumn.createValueMap(value));
      }
      let ids = sides.get(side);
      if (ids === undefined) sides.set(side, (ids = new Map()));
      ids.set(idKey(id), id);
    }
  }
  return new Map([...sides].map(([side, ids]) => [side, [...ids.values()]]));
}

/** The rows linked to `rows` through their loaded many-to-many relations. */
function partnersOf(metadata: EntityMetadata, rows: readonly ObjectLiteral[]): Map<EntityMetadata, ObjectLiteral[]> {
  const partners = new Map<EntityMetadata, Map<string, ObjectLiteral>>();
  for (const relation of metadata.manyToManyRelations) {
    const side = relation.inverseEntityMetadata;
    for (const row of rows) {
      const linked = relation.getEntityValue(row);
      if (!Array.isArray(linked)) continue;
      for (const partner of linked) {
        const id = isObject(partner) ? side.getEntityIdMap(partner) : undefined;
        if (id === undefined) continue;
        let ids = partners.get(side);
        if (ids === undefined) partners.set(side, (ids = new Map()));
        ids.set(idKey(id), id);
      }
    }
  }
  return new Map([...partners].map(([side, ids]) => [side, [...ids.values()]]));
}

function affectedOf(result: unknown): number | undefined {
  const affected = isObject(result) ? result.affected : undefined;
  return typeof affected === 'number' ? affected : undefined;
}

function isKeyValue(value: unknown): boolean {
  return value != null && (typeof value !== 'object' || value instanceof Date) && typeof value !== 'function';
}

/**
 * Conditions that find the rows an upsert may overwrite: its conflict columns when it names them,
 * else every unique key the values fill in (MySQL's ON DUPLICATE KEY UPDATE fires on any of them).
 */
function conflictKeys(metadata: EntityMetadata, map: ExpressionMap, values: readonly ObjectLiteral[]): ObjectLiteral[] | undefined {
  const conflict = map.onUpdate?.conflict;
  const named = (Array.isArray(conflict) ? conflict : typeof conflict === 'string' ? [conflict] : []).map((name) =>
    metadata.findColumnWithDatabaseName(name),
  );
  let keys: Column[][];
  if (named.length > 0 && named.every((c): c is Column => c !== undefined)) keys = [named];
  else {
    keys = [metadata.primaryColumns, ...metadata.uniques.map((u) => u.columns), ...metadata.indices.filter((i) => i.isUnique).map((i) => i.columns)];
  }
  const where: ObjectLiteral[] = [];
  for (const value of values) {
    let found = false;
    for (const columns of keys) {
      if (columns.length === 0) continue;
      const parts = columns.map((c) => [c, c.getEntityValue(value)] as const);
      if (!parts.every(([, v]) => isKeyValue(v))) continue;
      const condition: ObjectLiteral = {};
      for (const [c, v] of parts) mergeInto(condition, c.createValueMap(v));
      where.push(condition);
      found = true;
    }
    if (!found) return undefined;
  }
  return where;
}

// ---------------------------------------------------------------- trackReads

/**
 * The to-one relations, declared on any entity, whose foreign key references rows of
 * `metadata`'s table (one entity per table: a child entity of single-table inheritance repeats its parent's).
 */
function referencing(dataSource: DataSource, metadata: EntityMetadata): Relation[] {
  return dataSource.entityMetadatas
    .filter((m) => m.tableType !== 'entity-child')
    .flatMap((m) => m.relations.filter((r) => (r.isManyToOne || r.isOneToOneOwner) && r.inverseEntityMetadata.tablePath === metadata.tablePath));
}

/** The to-one relations whose foreign key references one of `columns` with an `ON UPDATE` action that changes it. */
function updateReach(dataSource: DataSource, columns: readonly Column[]): Relation[] {
  return dataSource.entityMetadatas
    .filter((m) => m.tableType !== 'entity-child')
    .flatMap((m) =>
      m.relations.filter(
        (r) =>
          (r.isManyToOne || r.isOneToOneOwner) &&
          (r.onUpdate === 'CASCADE' || r.onUpdate === 'SET NULL' || r.onUpdate === 'DEFAULT') &&
          r.joinColumns.some((j) => columns.some((c) => j.referencedColumn?.databaseName === c.databaseName && j.referencedColumn.entityMetadata.tablePath === c.entityMetadata.tablePath)),
      ),
    );
}

/** Tags to invalidate, in the shape `invalidateDependents()` and the transaction buffers take. */
function readDependents(metadata: EntityMetadata, tags: readonly string[]): Dependents {
  return { model: metadata.name, paths: [], tags };
}

/**
 * A row's primary key and foreign keys, by column name, as the write-side tags need them: spelled
 * as reads spell them (./keys.ts); a primary key that spells none leaves the id unknown.
 */
function writtenRow(metadata: EntityMetadata, row: ObjectLiteral): WrittenRow {
  const id: Record<string, unknown> = {};
  for (const column of metadata.primaryColumns) {
    const value = returnedKey(column, column.getEntityValue(row));
    if (value === undefined) return { id: undefined, keys: [] };
    id[column.databaseName] = value;
  }
  const keys: KeyValues[] = [];
  for (const relation of metadata.relations) {
    if (!(relation.isManyToOne || relation.isOneToOneOwner) || relation.joinColumns.length === 0) continue;
    const key: Record<string, unknown> = {};
    for (const column of relation.joinColumns) {
      // The related row as loaded (see #relationsOf), else a column of the same name declared beside the relation.
      let value = column.getEntityValue(row);
      if (value === undefined) {
        const own = metadata.columns.find((c) => c.relationMetadata === undefined && c.databaseName === column.databaseName);
        value = own?.getEntityValue(row);
      }
      key[column.databaseName] = value;
    }
    if (Object.values(key).every((v) => v != null)) {
      // A value that spells no key of its column: the row's id alone cannot name what changed.
      for (const column of relation.joinColumns) {
        const spelled = returnedKey(column, key[column.databaseName]);
        if (spelled === undefined) return { id: undefined, keys: [] };
        key[column.databaseName] = spelled;
      }
      keys.push(key);
    }
  }
  return { id, keys };
}

/** Join-table rows (by column property or database name): the tags of both sides' links. */
function junctionTags(junction: EntityMetadata, links: readonly ObjectLiteral[]): string[] {
  return linkTags(
    junction.tablePath,
    links.map((link) =>
      [junction.ownerColumns, junction.inverseColumns].map((group) => {
        const key: Record<string, unknown> = {};
        for (const column of group) key[column.databaseName] = returnedKey(column, link[column.propertyName] ?? link[column.databaseName]);
        return { key };
      }),
    ),
  );
}
