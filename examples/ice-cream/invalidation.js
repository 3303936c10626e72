/**
 * Invalidation wiring: a TypeORM entity subscriber that turns writes into `dumper.changed()`.
 *
 * Until page-dumper ships its TypeORM integration (`page-dumper/typeorm`), this is what it does
 * for the demo, in the spirit of django-dumper's post_save / pre_delete / m2m_changed signals:
 *
 * - insert, update: reload the row with its many-to-many relations (inside the same transaction,
 *   through `event.manager`) and call `dumper.changed(row)`. On update the row as it was before
 *   (`event.databaseEntity`) is invalidated too, so a changed slug also drops the old page.
 * - remove: the paths must be computed *before* the row and its junction rows are deleted (after
 *   the delete there is nothing to load), but invalidated *after* it, or a request arriving in
 *   between could render and store the old page again. So `beforeRemove` loads a snapshot with its
 *   relations and `afterRemove` calls `dumper.changed(snapshot)`.
 * - many-to-many: TypeORM does not report a change of `iceCream.sizes` as an update of the ice
 *   cream (no afterUpdate fires when only the relation changed); it inserts and deletes rows of
 *   the junction table and reports those, with `entityId = { iceCreamId, sizeId }`. For each
 *   junction row we load both sides that still exist and call `dumper.changed()` on each: the
 *   flavour (its page, the list, and the pages of the sizes it now has) and the size (its page
 *   and the pages of the flavours it now has). Together that covers the sizes added and removed.
 *
 * Only models registered with `dumper.register()` are considered. Writes that bypass entities
 * (`repository.update(criteria, values)`, `delete(criteria)`, raw queries) carry no entity and
 * are not seen here: call `dumper.changed()` / `dumper.invalidate()` yourself after those.
 *
 * Not done here (the design's TypeORM integration will): invalidating again when the outermost
 * transaction commits or rolls back. With SQLite's single connection, a page rendered between a
 * write and its commit reads the uncommitted row; if the transaction then rolls back, that page
 * stays stored until the next write. The demo's writes are single statements that commit at
 * once, so the window does not arise here.
 *
 * TypeORM only instantiates subscribers from `DataSourceOptions.subscribers` when they carry the
 * `@EventSubscriber()` decorator, so without decorators the instance is pushed onto
 * `dataSource.subscribers` after `initialize()`; see `installDumperSubscriber()`.
 */

/** @typedef {import('page-dumper').Dumper} Dumper */
/** @typedef {import('typeorm').EntityManager} EntityManager */
/** @typedef {import('typeorm').EntityMetadata} EntityMetadata */

/** A TypeORM EntitySubscriberInterface (without the decorator). */
export class DumperSubscriber {
  /** @type {Dumper} */ #dumper;
  /** Snapshots taken in beforeRemove, keyed by the entity object being removed. */
  #removing = new WeakMap();

  /** @param {Dumper} dumper */
  constructor(dumper) {
    this.#dumper = dumper;
  }

  /** @param {import('typeorm').InsertEvent<any>} event */
  async afterInsert(event) {
    if (event.metadata.isJunction) return this.#junctionChanged(event.manager, event.metadata, event.entityId);
    if (!this.#watched(event.metadata) || event.entity == null) return;
    const row = await load(event.manager, event.metadata, event.metadata.getEntityIdMap(event.entity));
    await this.#dumper.changed(row ?? event.entity);
  }

  /** @param {import('typeorm').UpdateEvent<any>} event */
  async afterUpdate(event) {
    if (!this.#watched(event.metadata) || event.entity == null) return;
    const id = event.metadata.getEntityIdMap(event.databaseEntity ?? event.entity);
    if (id === undefined) return; // an update by criteria (QueryBuilder): no entity to go by
    const row = await load(event.manager, event.metadata, id);
    if (row) await this.#dumper.changed(row);
    if (event.databaseEntity) {
      // The row as it was (old slug, old name), with the relations it has now: its relation
      // stubs ({ id }) cannot tell their own paths.
      const before = copyOf(event.databaseEntity, event.metadata);
      for (const r of event.metadata.manyToManyRelations) before[r.propertyName] = row?.[r.propertyName] ?? [];
      await this.#dumper.changed(before);
    }
  }

  /** @param {import('typeorm').RemoveEvent<any>} event */
  async beforeRemove(event) {
    if (event.metadata.isJunction || !this.#watched(event.metadata) || event.entity == null) return;
    const id = event.metadata.getEntityIdMap(event.databaseEntity ?? event.entity);
    const row = id && (await load(event.manager, event.metadata, id));
    this.#removing.set(event.entity, row ?? copyOf(event.entity, event.metadata));
  }

  /** @param {import('typeorm').RemoveEvent<any>} event */
  async afterRemove(event) {
    if (event.metadata.isJunction) return this.#junctionChanged(event.manager, event.metadata, event.entityId);
    if (!this.#watched(event.metadata) || event.entity == null) return;
    const snapshot = this.#removing.get(event.entity);
    this.#removing.delete(event.entity);
    if (snapshot) await this.#dumper.changed(snapshot);
  }

  /** @param {EntityMetadata} metadata */
  #watched(metadata) {
    return typeof metadata.target === 'function' && this.#dumper.isRegistered(metadata.target);
  }

  /**
   * A row of a junction table was inserted or deleted: both sides changed.
   * @param {EntityManager} manager
   * @param {EntityMetadata} junction
   * @param {any} entityId the junction row's columns, e.g. { iceCreamId: 1, sizeId: 2 }
   */
  async #junctionChanged(manager, junction, entityId) {
    if (entityId == null || typeof entityId !== 'object') return;
    for (const columns of [junction.ownerColumns, junction.inverseColumns]) {
      const side = columns[0]?.referencedColumn?.entityMetadata;
      if (!side || !this.#watched(side)) continue;
      /** @type {Record<string, unknown>} */
      const where = {};
      for (const column of columns) where[column.referencedColumn.propertyName] = entityId[column.propertyName];
      // Gone when the junction row went with its owner: the owner's beforeRemove snapshot covers it.
      const row = await load(manager, side, where);
      if (row) await this.#dumper.changed(row);
    }
  }
}

/**
 * Loads a row with all its many-to-many relations, inside the transaction of the event.
 * @param {EntityManager} manager
 * @param {EntityMetadata} metadata
 * @param {Record<string, unknown> | undefined} where
 */
async function load(manager, metadata, where) {
  if (!where) return null;
  const relations = Object.fromEntries(metadata.manyToManyRelations.map((r) => [r.propertyName, true]));
  return manager.findOne(metadata.target, { where, relations });
}

/** A shallow copy that keeps the class (so the dumper finds the model). */
function copyOf(entity, metadata) {
  const proto = typeof metadata.target === 'function' ? metadata.target.prototype : Object.getPrototypeOf(entity);
  return Object.assign(Object.create(proto), entity);
}

/**
 * Starts invalidating on writes to registered models.
 * @param {import('typeorm').DataSource} dataSource an initialized data source
 * @param {Dumper} dumper
 */
export function installDumperSubscriber(dataSource, dumper) {
  const subscriber = new DumperSubscriber(dumper);
  dataSource.subscribers.push(subscriber);
  return subscriber;
}
