/**
 * The tables, defined with drizzle-orm/sqlite-core. Field names are camelCase; the SQL names
 * (which the dumper registers, see models.js) are snake_case. `ice_cream_size` is the
 * many-to-many junction table. The relations are only for `db.query.*` (relational queries).
 */
import { relations } from 'drizzle-orm';
import { integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

export const iceCream = sqliteTable('ice_cream', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  slug: text('slug').notNull().unique(),
  name: text('name').notNull(),
  description: text('description').notNull().default(''),
});

export const size = sqliteTable('size', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  slug: text('slug').notNull().unique(),
  name: text('name').notNull(),
});

export const iceCreamSize = sqliteTable(
  'ice_cream_size',
  {
    iceCreamId: integer('ice_cream_id')
      .notNull()
      .references(() => iceCream.id, { onDelete: 'cascade' }),
    sizeId: integer('size_id')
      .notNull()
      .references(() => size.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ columns: [t.iceCreamId, t.sizeId] })],
);

export const iceCreamRelations = relations(iceCream, ({ many }) => ({ links: many(iceCreamSize) }));
export const sizeRelations = relations(size, ({ many }) => ({ links: many(iceCreamSize) }));
export const iceCreamSizeRelations = relations(iceCreamSize, ({ one }) => ({
  iceCream: one(iceCream, { fields: [iceCreamSize.iceCreamId], references: [iceCream.id] }),
  size: one(size, { fields: [iceCreamSize.sizeId], references: [size.id] }),
}));
