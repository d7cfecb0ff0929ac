import type { Participation } from '../domain/routing.ts';
import type { Channel, TtlMode } from '../domain/session.ts';
import type { Store } from './db.ts';
import { Prepared } from './prepared.ts';
import { ACTIVE } from './schema.ts';

/** The caller's participation with what routing and a sliding TTL need. */
export interface RouteParticipation extends Participation {
  ttlMode: TtlMode;
  ttlSeconds: number | null;
}

/** A row as the query selects it (Store.readTuples): the caller's participation, its session, the other. */
type Row = [
  participantId: string,
  sessionId: string,
  tenantId: string,
  number: string,
  canInitiate: number,
  revealNumber: number,
  expiresAt: number,
  record: number,
  channels: string,
  maxCallSeconds: number | null,
  ttlMode: string,
  ttlSeconds: number | null,
  otherId: string | null,
  otherNumber: string | null,
  otherProxy: string | null,
];

/**
 * The one query on the routing hot path: the open participation of `from` on proxy `to` (the unique
 * index of the invariant finds it), joined to its session and the other participant. It is
 * compiled once; each call only swaps in the two numbers, and the SQLite store keeps the prepared
 * statement, so a lookup is one index probe and no query building.
 */
export class RouteLookup {
  /** Its rows come back as tuples (Row), in the order of the select list. */
  private readonly query: Prepared<{ from: string; to: string }, unknown>;

  constructor(private readonly store: Store) {
    this.query = new Prepared(['from', 'to'], (v) =>
      store.reader
        .selectFrom('participants as p')
        .innerJoin('sessions as s', 's.id', 'p.session_id')
        .leftJoin('participants as o', (join) =>
          join
            .onRef('o.session_id', '=', 'p.session_id')
            .on('o.active', '=', ACTIVE)
            .onRef('o.id', '<>', 'p.id'),
        )
        .select([
          'p.id as participant_id',
          'p.session_id',
          'p.tenant_id',
          'p.number',
          'p.can_initiate',
          'p.reveal_number',
          's.expires_at',
          's.record',
          's.channels',
          's.max_call_seconds',
          's.ttl_mode',
          's.ttl_seconds',
          'o.id as other_id',
          'o.number as other_number',
          'o.proxy_number as other_proxy',
        ])
        .where('p.number', '=', v.from)
        .where('p.proxy_number', '=', v.to)
        .where('p.active', '=', ACTIVE),
    );
  }

  async find(from: string, to: string): Promise<RouteParticipation | undefined> {
    const [r] = await this.store.readTuples<Row>(this.query.bind([from, to]));
    if (!r) return undefined;
    const [
      participantId,
      sessionId,
      tenantId,
      number,
      canInitiate,
      revealNumber,
      expiresAt,
      record,
      channels,
      maxCallSeconds,
      ttlMode,
      ttlSeconds,
      otherId,
      otherNumber,
      otherProxy,
    ] = r;
    return {
      participantId,
      sessionId,
      tenantId,
      number,
      canInitiate: canInitiate === 1,
      revealNumber: revealNumber === 1,
      expiresAt,
      record: record === 1,
      channels: channels.split(',') as Channel[],
      maxCallSeconds,
      ttlMode: ttlMode as TtlMode,
      ttlSeconds,
      other:
        otherId && otherNumber && otherProxy
          ? { participantId: otherId, number: otherNumber, proxyNumber: otherProxy }
          : null,
    };
  }
}
