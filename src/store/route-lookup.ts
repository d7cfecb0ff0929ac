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

interface Row {
  participant_id: string;
  session_id: string;
  tenant_id: string;
  number: string;
  can_initiate: number;
  reveal_number: number;
  expires_at: number;
  record: number;
  channels: string;
  max_call_seconds: number | null;
  ttl_mode: string;
  ttl_seconds: number | null;
  other_id: string | null;
  other_number: string | null;
  other_proxy: string | null;
}

/**
 * The one query on the routing hot path: the open participation of `from` on proxy `to` (the unique
 * index of the invariant finds it), joined to its session and the other participant. It is
 * compiled once; each call only swaps in the two numbers, and the SQLite store keeps the prepared
 * statement, so a lookup is one index probe and no query building.
 */
export class RouteLookup {
  private readonly query: Prepared<{ from: string; to: string }, Row>;

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
    const [r] = await this.store.read(this.query.bind([from, to]));
    if (!r) return undefined;
    return {
      participantId: r.participant_id,
      sessionId: r.session_id,
      tenantId: r.tenant_id,
      number: r.number,
      canInitiate: r.can_initiate === 1,
      revealNumber: r.reveal_number === 1,
      expiresAt: r.expires_at,
      record: r.record === 1,
      channels: r.channels.split(',') as Channel[],
      maxCallSeconds: r.max_call_seconds,
      ttlMode: r.ttl_mode as TtlMode,
      ttlSeconds: r.ttl_seconds,
      other:
        r.other_id && r.other_number && r.other_proxy
          ? { participantId: r.other_id, number: r.other_number, proxyNumber: r.other_proxy }
          : null,
    };
  }
}
