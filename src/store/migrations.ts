import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';

/** Migrations in code, one schema for both dialects (bigint reads as INTEGER affinity on SQLite). */
const migrations: Record<string, Migration> = {
  '0001_core': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('tenants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db
        .insertInto('tenants' as never)
        .values({ id: 'default', name: 'default', created_at: Date.now() } as never)
        .execute();

      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('scopes', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();

      await db.schema
        .createTable('numbers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('number', 'text', (c) => c.notNull().unique())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('country', 'text', (c) => c.notNull())
        .addColumn('region', 'text', (c) => c.notNull())
        .addColumn('voice', 'integer', (c) => c.notNull())
        .addColumn('sms', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('max_sessions', 'integer')
        .addColumn('load', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        // The cap is enforced where load grows (a guarded update), so lowering a cap never fails.
        .addCheckConstraint('numbers_load_not_negative', sql`load >= 0`)
        .execute();
      // Allocation walks these in (load, id) order and stops at the first number that fits: with id
      // in the index no sort of the whole pool is needed.
      await db.schema
        .createIndex('numbers_pick_region')
        .on('numbers')
        .columns(['tenant_id', 'country', 'region', 'status', 'load', 'id'])
        .execute();
      await db.schema
        .createIndex('numbers_pick_country')
        .on('numbers')
        .columns(['tenant_id', 'country', 'status', 'load', 'id'])
        .execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('external_id', 'text')
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('mode', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('ttl_mode', 'text', (c) => c.notNull())
        .addColumn('ttl_seconds', 'integer')
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('record', 'integer', (c) => c.notNull())
        .addColumn('channels', 'text', (c) => c.notNull())
        .addColumn('max_call_seconds', 'integer')
        .addColumn('geo_match', 'text', (c) => c.notNull())
        .addColumn('sticky', 'text', (c) => c.notNull())
        .addColumn('extension_fallback', 'integer', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('closed_at', 'bigint')
        .execute();
      // externalId is the idempotency key: unique per tenant among open sessions.
      await db.schema
        .createIndex('sessions_open_external_id')
        .unique()
        .on('sessions')
        .columns(['tenant_id', 'external_id'])
        .where(sql.ref('status'), '=', 'open')
        .execute();
      await db.schema
        .createIndex('sessions_tenant_list')
        .on('sessions')
        .columns(['tenant_id', 'id'])
        .execute();
      await db.schema
        .createIndex('sessions_open_expiry')
        .on('sessions')
        .columns(['status', 'expires_at'])
        .execute();

      await db.schema
        .createTable('participants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id'))
        .addColumn('number', 'text', (c) => c.notNull())
        .addColumn('label', 'text')
        .addColumn('proxy_number_id', 'text', (c) => c.notNull().references('numbers.id'))
        .addColumn('proxy_number', 'text', (c) => c.notNull())
        .addColumn('reveal_number', 'integer', (c) => c.notNull())
        .addColumn('can_initiate', 'integer', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('released_at', 'bigint')
        .addColumn('removed_at', 'bigint')
        .execute();
      // The invariant of DESIGN §1, and the routing lookup: one open participation per (real, proxy).
      await db.schema
        .createIndex('participants_open_proxy')
        .unique()
        .on('participants')
        .columns(['number', 'proxy_number'])
        .where(sql.ref('active'), '=', 1)
        .execute();
      await db.schema.createIndex('participants_session').on('participants').column('session_id').execute();
      await db.schema
        .createIndex('participants_history')
        .on('participants')
        .columns(['number', 'released_at'])
        .execute();

      await db.schema
        .createTable('interactions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text')
        .addColumn('session_id', 'text')
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('from_number', 'text', (c) => c.notNull())
        .addColumn('to_number', 'text', (c) => c.notNull())
        .addColumn('target_number', 'text')
        .addColumn('caller_id', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('provider_call_id', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('duration_seconds', 'integer')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('interactions_session')
        .on('interactions')
        .columns(['session_id', 'id'])
        // Partial: a refused call of a stranger (no session) or an API decision (no call id)
        // costs no entry, and every interaction written is on the routing path's budget.
        .where(sql.ref('session_id'), 'is not', null)
        .execute();
      await db.schema
        .createIndex('interactions_provider_call')
        .on('interactions')
        .columns(['provider', 'provider_call_id'])
        .where(sql.ref('provider_call_id'), 'is not', null)
        .execute();

      // The outbox: events written in the same transaction as the change they describe.
      await db.schema
        .createTable('events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('events_tenant').on('events').columns(['tenant_id', 'id']).execute();

      await db.schema
        .createTable('settings')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_release_indexes': {
    async up(db: Kysely<unknown>) {
      // Only released participations are looked up by release time (the reuse cooldown), so open
      // ones cost these indexes no entry: a create writes nothing here, a release two entries.
      // One answers whether a person gave any number back lately; the other whether they gave
      // back this number, probed number by number by a proxy search, so that a courier with
      // thousands of recent releases costs the search no more than one with a few.
      await db.schema.dropIndex('participants_history').execute();
      await db.schema
        .createIndex('participants_history')
        .on('participants')
        .columns(['number', 'released_at'])
        .where(sql.ref('released_at'), 'is not', null)
        .execute();
      await db.schema
        .createIndex('participants_released_proxy')
        .on('participants')
        .columns(['number', 'proxy_number_id', 'released_at'])
        .where(sql.ref('released_at'), 'is not', null)
        .execute();
    },
  },
  '0003_interaction_media': {
    async up(db: Kysely<unknown>) {
      // An MMS's media URLs (a JSON array; null for a call or a plain text) and a call's recording
      // as the carrier reports it. One column per statement: SQLite adds one at a time.
      await db.schema.alterTable('interactions').addColumn('media', 'text').execute();
      await db.schema.alterTable('interactions').addColumn('recording_url', 'text').execute();
      await db.schema.alterTable('interactions').addColumn('recording_duration_seconds', 'integer').execute();
      await db.schema.alterTable('interactions').addColumn('recording_status', 'text').execute();
    },
  },
  '0004_blocklist': {
    async up(db: Kysely<unknown>) {
      // Numbers never connected, per tenant. The routing lookup probes the primary key's index for
      // both people of a call in the same statement, so a route costs no second round trip.
      await db.schema
        .createTable('blocklist')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('number', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('blocklist_pkey', ['tenant_id', 'number'])
        .execute();
    },
  },
  '0005_external_ids': {
    async up(db: Kysely<unknown>) {
      // An externalId names one session for ever (DESIGN §2): a create looks it up whatever the
      // session's status, newest first (`id` sorts by creation). Not unique, since databases from
      // before this rule may hold an order's closed session and the one opened after it; the unique
      // index over open sessions still stops two concurrent creates opening two. Partial: a session
      // without an externalId costs it no entry.
      await db.schema
        .createIndex('sessions_external_id')
        .on('sessions')
        .columns(['tenant_id', 'external_id', 'id'])
        .where(sql.ref('external_id'), 'is not', null)
        .execute();
    },
  },
  '0006_modes': {
    async up(db: Kysely<unknown>) {
      // Extension fallback (DESIGN §1 AXE): a participation may hold a number with an extension
      // code ('' for a direct one). A person holds a number once directly, or by several codes,
      // never both: the invariant's index takes the code in, so the routing lookup of a direct
      // participation probes (number, proxy, '') and an allocation's check of what people hold
      // still probes the (number, proxy) prefix.
      await db.schema
        .alterTable('participants')
        .addColumn('extension', 'text', (c) => c.notNull().defaultTo(''))
        .execute();
      await db.schema.dropIndex('participants_open_proxy').execute();
      await db.schema
        .createIndex('participants_open_proxy')
        .unique()
        .on('participants')
        .columns(['number', 'proxy_number', 'extension'])
        .where(sql.ref('active'), '=', 1)
        .execute();
      // A code names one participation on its number. Only extension rows have entries here, so
      // an ordinary create writes nothing to it.
      await db.schema
        .createIndex('participants_open_extension')
        .unique()
        .on('participants')
        .columns(['proxy_number', 'extension'])
        .where(sql<boolean>`active = 1 and extension <> ''`)
        .execute();
      // The open `dedicated` session that owns a number alone, cleared when it lets go.
      await db.schema.alterTable('numbers').addColumn('dedicated_to', 'text').execute();
    },
  },
  '0007_reject_message': {
    async up(db: Kysely<unknown>) {
      // What a caller refused within the session hears (JSON), when not the installation's.
      await db.schema.alterTable('sessions').addColumn('reject_message', 'text').execute();
    },
  },
  '0008_purchases': {
    async up(db: Kysely<unknown>) {
      // The purchase journal: a row is written `buying` before the carrier is asked to buy a number
      // and turns `bought` in the transaction that adds the number to the pool, so a crash in
      // between leaves a row to settle by asking the carrier (services/procurement.ts). A bought
      // number that retires is given back: `releasing`, then `released` (or `release_failed`).
      await db.schema
        .createTable('purchases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('number', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('carrier_ref', 'text')
        .addColumn('capabilities', 'text', (c) => c.notNull())
        .addColumn('release_attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      // One purchase under way or held per number: two imports (or two instances) never buy the
      // same number at once, nor twice.
      await db.schema
        .createIndex('purchases_held_number')
        .unique()
        .on('purchases')
        .column('number')
        .where(sql<boolean>`status in ('buying', 'bought', 'releasing')`)
        .execute();
      await db.schema
        .createIndex('purchases_status')
        .on('purchases')
        .columns(['status', 'updated_at'])
        .execute();
    },
  },
  '0009_purchase_origin': {
    async up(db: Kysely<unknown>) {
      // Who asked for a purchase: an operator's import, or the replenisher, whose spending is capped
      // by a budget counted over its own purchases (services/replenisher.ts).
      await db.schema
        .alterTable('purchases')
        .addColumn('origin', 'text', (c) => c.notNull().defaultTo('import'))
        .execute();
    },
  },
  '0010_bindings': {
    async up(db: Kysely<unknown>) {
      // Remote binding (domain/binding.ts): the state of a participation's binding at a carrier
      // that connects calls itself (null for every other carrier), changed only by an update that
      // names the version it read (optimistic locking); the tries so far, when the worker may try
      // again, the carrier's id for the binding (its SubsId) and the last error. One column per
      // statement: SQLite adds one at a time.
      await db.schema.alterTable('participants').addColumn('binding', 'text').execute();
      await db.schema
        .alterTable('participants')
        .addColumn('binding_version', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable('participants')
        .addColumn('binding_attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.alterTable('participants').addColumn('binding_next_at', 'bigint').execute();
      await db.schema.alterTable('participants').addColumn('binding_ref', 'text').execute();
      await db.schema.alterTable('participants').addColumn('binding_error', 'text').execute();
      // The worker's work list: only pending bindings have entries, so an ordinary participation
      // (every create of every other carrier) writes nothing here.
      await db.schema
        .createIndex('participants_binding_due')
        .on('participants')
        .columns(['binding_next_at', 'session_id'])
        .where(sql<boolean>`binding in ('binding', 'unbinding')`)
        .execute();
    },
  },
  '0011_webhook_endpoints': {
    async up(db: Kysely<unknown>) {
      // The outbox's delivery (services/outbox.ts). Events are turned into deliveries after they
      // are written, not by the writer: `fanned_out` marks those done, so an event committed late
      // (its id older than others already seen) is not skipped, as a cursor over ids would.
      await db.schema
        .alterTable('events')
        .addColumn('fanned_out', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      // Events written before deliveries existed are no one's to deliver.
      await db
        .updateTable('events' as never)
        .set({ fanned_out: 1 } as never)
        .execute();
      await db.schema
        .createIndex('events_to_fan_out')
        .on('events')
        .column('id')
        .where(sql<boolean>`fanned_out = 0`)
        .execute();

      await db.schema
        .createTable('webhook_endpoints')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('events', 'text')
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('deleted_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('webhook_endpoints_tenant')
        .on('webhook_endpoints')
        .columns(['tenant_id', 'id'])
        .execute();

      // One row per event and endpoint: two instances fanning out the same event make one.
      await db.schema
        .createTable('deliveries')
        .addColumn('event_id', 'text', (c) => c.notNull().references('events.id'))
        .addColumn('endpoint_id', 'text', (c) => c.notNull().references('webhook_endpoints.id'))
        .addColumn('order_key', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_at', 'bigint', (c) => c.notNull())
        .addColumn('lease_until', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('last_error', 'text')
        .addColumn('last_status', 'integer')
        .addColumn('delivered_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('deliveries_pk', ['event_id', 'endpoint_id'])
        .execute();
      // Only pending deliveries are looked for: the due ones, and the earlier ones of the same
      // session at the same endpoint that hold a later one back.
      await db.schema
        .createIndex('deliveries_due')
        .on('deliveries')
        .columns(['next_at', 'event_id'])
        .where(sql<boolean>`status = 'pending'`)
        .execute();
      await db.schema
        .createIndex('deliveries_order')
        .on('deliveries')
        .columns(['endpoint_id', 'order_key', 'event_id'])
        .where(sql<boolean>`status = 'pending'`)
        .execute();
    },
  },
  '0012_metrics_indexes': {
    async up(db: Kysely<unknown>) {
      // What /metrics counts at each scrape (services/metrics.ts), each from an index whose entries
      // are only the rare rows it counts, so that neither a scrape nor an ordinary write pays for
      // the whole table: bindings given up (a bind's keeps its session's proxy active, an unbind's
      // has let go), and dead deliveries.
      await db.schema
        .createIndex('participants_binding_failed')
        .on('participants')
        .columns(['active', 'session_id'])
        .where(sql<boolean>`binding = 'failed'`)
        .execute();
      await db.schema
        .createIndex('deliveries_dead')
        .on('deliveries')
        .column('endpoint_id')
        .where(sql<boolean>`status = 'dead'`)
        .execute();
    },
  },
  '0013_audit': {
    async up(db: Kysely<unknown>) {
      // The admin actions (domain/audit.ts), each written in the transaction of the change it
      // records. `key_id` is the acting API key (null for the CLI), `tenant_id` the tenant whose
      // resource it changed; a target that is a real number is kept masked.
      await db.schema
        .createTable('audit')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('key_id', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target_id', 'text', (c) => c.notNull())
        .addColumn('detail', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_tenant').on('audit').columns(['tenant_id', 'id']).execute();
    },
  },
  '0014_webhook_receipts': {
    async up(db: Kysely<unknown>) {
      // The carrier webhooks already taken, by a digest of what makes each one the request it is
      // (store/webhook-receipts.ts): the same signed request again is a replay. The key is unique
      // across instances; rows go once the carrier's own check would refuse the request as stale.
      await db.schema
        .createTable('webhook_receipts')
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('digest', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('webhook_receipts_pkey', ['provider', 'digest'])
        .execute();
      await db.schema
        .createIndex('webhook_receipts_expiry')
        .on('webhook_receipts')
        .column('expires_at')
        .execute();
    },
  },
  '0015_sealed_numbers': {
    async up(db: Kysely<unknown>) {
      // Real numbers at rest (DESIGN §4, store/vault.ts): a person's number is looked up by its
      // blind index and kept sealed beside it. The renamed columns keep their indexes (the
      // invariant's, the history's, the blocklist's key); rows from before hold the number in
      // clear there, with no sealed value, until the store seals them at start (store/sealing.ts).
      // An interaction's numbers are sealed in place; `from_index` finds the last caller.
      await db.schema.alterTable('participants').renameColumn('number', 'number_index').execute();
      await db.schema.alterTable('participants').addColumn('number_sealed', 'text').execute();
      await db.schema.alterTable('blocklist').renameColumn('number', 'number_index').execute();
      await db.schema.alterTable('blocklist').addColumn('number_sealed', 'text').execute();
      await db.schema.alterTable('interactions').addColumn('from_index', 'text').execute();
    },
  },
};

const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};

/**
 * Brings the database to the latest schema. On PostgreSQL, `migrationTableSchema` names the schema
 * of Kysely's own tables: Kysely looks for them in every schema it can see, and naming ours keeps
 * another schema's copy (another install, another test) from being mistaken for it.
 */
export async function migrate(db: Kysely<unknown>, migrationTableSchema?: string): Promise<void> {
  const { error } = await new Migrator({
    db,
    provider: migrationProvider,
    migrationTableSchema,
  }).migrateToLatest();
  if (error) throw error;
}

/** Brings the database to the schema of one migration, `name` (tests of a later migration start there). */
export async function migrateTo(
  db: Kysely<unknown>,
  name: string,
  migrationTableSchema?: string,
): Promise<void> {
  const { error } = await new Migrator({
    db,
    provider: migrationProvider,
    migrationTableSchema,
  }).migrateTo(name);
  if (error) throw error;
}
