// Types for schema.js (plain JS), so the end-to-end test (test/orm/drizzle/example.test.ts)
// typechecks: the tables as sqliteTable() types them. The relations are left out.
import type { BuildColumns, HasDefault, IsAutoincrement, IsPrimaryKey, NotNull } from 'drizzle-orm';
import type { SQLiteColumnBuilderBase, SQLiteIntegerBuilderInitial, SQLiteTableWithColumns, SQLiteTextBuilderInitial } from 'drizzle-orm/sqlite-core';

type Table<Name extends string, Columns extends Record<string, SQLiteColumnBuilderBase>> = SQLiteTableWithColumns<{
  name: Name;
  schema: undefined;
  columns: BuildColumns<Name, Columns, 'sqlite'>;
  dialect: 'sqlite';
}>;
type Id = IsAutoincrement<IsPrimaryKey<NotNull<SQLiteIntegerBuilderInitial<'id'>>>>;
type Text<Name extends string> = NotNull<SQLiteTextBuilderInitial<Name, [string, ...string[]], undefined>>;

export declare const iceCream: Table<'ice_cream', { id: Id; slug: Text<'slug'>; name: Text<'name'>; description: HasDefault<Text<'description'>> }>;
export declare const size: Table<'size', { id: Id; slug: Text<'slug'>; name: Text<'name'> }>;
export declare const iceCreamSize: Table<
  'ice_cream_size',
  { iceCreamId: NotNull<SQLiteIntegerBuilderInitial<'ice_cream_id'>>; sizeId: NotNull<SQLiteIntegerBuilderInitial<'size_id'>> }
>;
