import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { DEFAULT_REJECT_MESSAGE } from '../../src/domain/routing.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

/**
 * Random sequences of create / close / expire / sweep / renew / add / remove / replace (in two
 * steps, or in one with PUT) / route / read, driven through the HTTP API against a model of which sessions are open. After every step:
 * the invariant of DESIGN §1 (from the model and from the participants table), numbers.load against
 * the rows that hold each number, and the database against the model. Routing must connect exactly
 * what the model says and reveal no real number otherwise; pool_exhausted must come exactly when
 * the person (per-participant) or the pair (shared) already holds every number of the country.
 *
 * FC_SEED and FC_RUNS replay or widen a run: FC_SEED=<seed printed on failure>.
 */

interface Person {
  number: string;
  country: string;
  region: string;
}

// A small crowd, so that people share many sessions and run out of proxies.
const PEOPLE: readonly Person[] = [
  { number: '+14155550101', country: 'US', region: '415' },
  { number: '+14155550102', country: 'US', region: '415' },
  { number: '+12125550103', country: 'US', region: '212' },
  { number: '+12125550104', country: 'US', region: '212' },
  // No pool number has area code 646: this person always falls back to the rest of the country.
  { number: '+16465550105', country: 'US', region: '646' },
  { number: '+442079460106', country: 'GB', region: '20' },
];
/** Never a participant: calls from here must never connect. */
const STRANGER = '+14155550199';
/** Never in the pool. */
const NOT_A_PROXY = '+14155550299';
const CANDIDATES = {
  '415': ['+14155550201', '+14155550202', '+14155550203'],
  '212': ['+12125550201', '+12125550202'],
  GB: ['+442079460201', '+442079460202'],
};
const COOLDOWN_SECONDS = 600;
const MODES = ['per-participant', 'shared'] as const;
type Mode = (typeof MODES)[number];

interface PoolEntry extends Person {
  id: string;
}

interface ModelParticipant {
  id: string;
  number: string;
  proxy: string;
}

interface ModelSession {
  id: string;
  label: string;
  mode: Mode;
  expiresAt: number;
  /** Set when this test closed it; an expiry is read from the clock. */
  closed: boolean;
  /** The participants now, or when it ended. */
  participants: ModelParticipant[];
  /** Participants taken out: their ids must answer 404, their numbers must not route. */
  removed: ModelParticipant[];
}

type State = 'open' | 'closed' | 'expired';

type Op =
  | { kind: 'create'; a: number; b: number; mode: Mode | null; ttl: number | null }
  | { kind: 'close'; s: number }
  | { kind: 'expire'; s: number; extra: number; sweep: boolean }
  | { kind: 'advance'; seconds: number }
  | { kind: 'sweep' }
  | { kind: 'renew'; s: number; ttl: number }
  | { kind: 'add'; s: number; p: number }
  | { kind: 'remove'; s: number; p: number }
  | { kind: 'replace'; s: number; p: number; q: number }
  | { kind: 'put'; s: number; p: number; q: number }
  | { kind: 'route'; hit: number; from: number; to: number; sms: boolean }
  | { kind: 'get'; s: number };

const ttlArb = fc.integer({ min: 1, max: 300 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('create' as const),
      a: fc.nat(),
      b: fc.nat(),
      mode: fc.constantFrom<Mode | null>('per-participant', 'shared', null),
      // Now and then no ttlSeconds: the default (a day) applies.
      ttl: fc.option(ttlArb, { freq: 8 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('close' as const), s: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('expire' as const),
      s: fc.nat(),
      extra: fc.integer({ min: 0, max: 1 }),
      // Sometimes the sweeper runs right then; else the session lingers, expired but not yet ended.
      sweep: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      seconds: fc.integer({ min: 1, max: 700 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('renew' as const), s: fc.nat(), ttl: ttlArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('add' as const), s: fc.nat(), p: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), s: fc.nat(), p: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('replace' as const), s: fc.nat(), p: fc.nat(), q: fc.nat() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('put' as const), s: fc.nat(), p: fc.nat(), q: fc.nat() }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('route' as const),
      hit: fc.integer({ min: 0, max: 2 }),
      from: fc.nat(),
      to: fc.nat(),
      sms: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('get' as const), s: fc.nat() }) },
);

const poolArb = fc.record({
  '415': fc.integer({ min: 1, max: 3 }),
  '212': fc.integer({ min: 0, max: 2 }),
  GB: fc.integer({ min: 0, max: 2 }),
});

const pick = <T>(list: readonly T[], i: number): T | undefined =>
  list.length === 0 ? undefined : list[i % list.length];
const personOf = (number: string): Person | undefined => PEOPLE.find((p) => p.number === number);

/** One generated sequence against a fresh pool, with its model and a readable trace. */
class Run {
  readonly sessions: ModelSession[] = [];
  readonly trace: string[] = [];

  constructor(
    private readonly t: TestApp,
    readonly pool: PoolEntry[],
  ) {}

  get now(): number {
    return this.t.clock.now;
  }

  state(s: ModelSession): State {
    if (s.closed) return 'closed';
    return s.expiresAt <= this.now ? 'expired' : 'open';
  }

  open(): ModelSession[] {
    return this.sessions.filter((s) => this.state(s) === 'open');
  }

  /** The proxies a person holds in open sessions (a list: the invariant says it has no repeats). */
  heldList(number: string): string[] {
    return this.open().flatMap((s) => s.participants.filter((p) => p.number === number).map((p) => p.proxy));
  }

  held(number: string): Set<string> {
    return new Set(this.heldList(number));
  }

  countryPool(country: string): PoolEntry[] {
    return this.pool.filter((n) => n.country === country);
  }

  async step(op: Op): Promise<void> {
    switch (op.kind) {
      case 'create':
        return this.create(op);
      case 'close':
        return this.close(op.s);
      case 'expire':
        return this.expire(op.s, op.extra, op.sweep);
      case 'advance':
        this.t.clock.advance(op.seconds);
        this.trace.push(`advance ${op.seconds}s`);
        return;
      case 'sweep':
        return this.sweep();
      case 'renew':
        return this.renew(op.s, op.ttl);
      case 'add':
        return this.add(op.s, op.p);
      case 'remove':
        return this.remove(op.s, op.p);
      case 'replace':
        return this.replace(op.s, op.p, op.q);
      case 'put':
        return this.put(op.s, op.p, op.q);
      case 'route':
        return this.route(op);
      case 'get':
        return this.get(op.s);
    }
  }

  private async create(op: Extract<Op, { kind: 'create' }>): Promise<void> {
    const mode: Mode = op.mode ?? 'per-participant';
    const a = PEOPLE[op.a % PEOPLE.length] as Person;
    const others = PEOPLE.filter((p) => p !== a);
    // A shared pair is mostly of one country (else it is refused); now and then it is not.
    const local = others.filter((p) => p.country === a.country);
    const b = pick(mode === 'shared' && op.b % 5 !== 0 && local.length > 0 ? local : others, op.b) as Person;
    const body = {
      ...(op.mode ? { mode: op.mode } : {}),
      ...(op.ttl !== null ? { ttlSeconds: op.ttl } : {}),
      participants: [{ number: a.number }, { number: b.number }],
    };
    const cooling = await this.cooling([a.number, b.number]);
    const r = await this.t.api('POST', '/v1/sessions', body);
    const label = `S${this.sessions.length}`;
    this.trace.push(
      `create ${label} ${mode} [${a.number}, ${b.number}] ttl=${op.ttl ?? 'default'} → ${r.statusCode} ${summary(r)}`,
    );

    if (mode === 'shared' && a.country !== b.country) {
      expectError(r, 400, 'invalid_request');
      return;
    }
    let exhausted: boolean;
    if (mode === 'per-participant') {
      exhausted = [a, b].some((p) => this.held(p.number).size >= this.countryPool(p.country).length);
    } else {
      const union = new Set([...this.held(a.number), ...this.held(b.number)]);
      exhausted = union.size >= this.countryPool(a.country).length;
    }
    if (exhausted) {
      expectError(r, 503, 'pool_exhausted');
      return;
    }
    assert.equal(r.statusCode, 201, `create must succeed while the pool has room: ${r.body}`);
    const session = r.json();
    assert.equal(session.status, 'open');
    assert.equal(session.mode, mode);
    assert.equal(Date.parse(session.expiresAt), this.now + (op.ttl ?? 86_400) * 1000, 'expiresAt');
    const participants: ModelParticipant[] = session.participants.map(
      (p: { id: string; number: string; proxyNumber: string }) => ({
        id: p.id,
        number: p.number,
        proxy: p.proxyNumber,
      }),
    );
    assert.deepEqual(
      participants.map((p) => p.number),
      [a.number, b.number],
    );
    const [pa, pb] = participants as [ModelParticipant, ModelParticipant];
    if (mode === 'shared') {
      assert.equal(pa.proxy, pb.proxy, 'a shared session has one proxy');
      this.expectPreferred(pa.proxy, [a, b], cooling);
    } else {
      this.expectPreferred(pa.proxy, [a], cooling);
      this.expectPreferred(pb.proxy, [b], cooling);
    }
    this.sessions.push({
      id: session.id,
      label,
      mode,
      expiresAt: Date.parse(session.expiresAt),
      closed: false,
      participants,
      removed: [],
    });
  }

  private async close(i: number): Promise<void> {
    const s = pick(this.sessions, i);
    if (!s) return;
    const before = this.state(s);
    const r = await this.t.api('DELETE', `/v1/sessions/${s.id}`);
    this.trace.push(`close ${s.label} (${before}) → ${r.statusCode} ${summary(r)}`);
    assert.equal(r.statusCode, 200, r.body);
    // Closing an expired session records it as expired; closing twice changes nothing.
    assert.equal(r.json().status, before === 'open' ? 'closed' : before);
    this.expectParticipants(s, r.json().participants);
    if (before === 'open') s.closed = true;
  }

  private async expire(i: number, extra: number, sweep: boolean): Promise<void> {
    const s = pick(this.open(), i);
    if (!s) return;
    // Exactly at expiresAt (extra 0) the session is over: expiry is `expiresAt <= now`.
    const seconds = (s.expiresAt - this.now) / 1000 + extra;
    this.t.clock.advance(seconds);
    this.trace.push(`expire ${s.label}: advance ${seconds}s`);
    if (sweep) await this.sweep();
  }

  private async sweep(): Promise<void> {
    const ended = await this.t.veil.sessions.expireDue();
    this.trace.push(`sweep → ${ended} ended`);
    const due = await this.t.veil.store.db
      .selectFrom('sessions')
      .select('id')
      .where('status', '=', 'open')
      .where('expires_at', '<=', this.now)
      .execute();
    assert.deepEqual(due, [], 'the sweeper leaves no open session past its expiry');
  }

  private async renew(i: number, ttl: number): Promise<void> {
    const s = pick(this.sessions, i);
    if (!s) return;
    const state = this.state(s);
    const r = await this.t.api('PATCH', `/v1/sessions/${s.id}`, { ttlSeconds: ttl });
    this.trace.push(`renew ${s.label} (${state}) ttl=${ttl} → ${r.statusCode} ${summary(r)}`);
    if (state !== 'open') {
      expectError(r, 409, 'conflict');
      return;
    }
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(Date.parse(r.json().expiresAt), this.now + ttl * 1000);
    s.expiresAt = this.now + ttl * 1000;
  }

  private async add(i: number, p: number): Promise<void> {
    // Mostly open sessions with room, so that adds get past the refusals.
    const roomy = this.open().filter((s) => s.participants.length < 2);
    const s = pick(roomy.length > 0 && p % 4 !== 0 ? roomy : this.sessions, i);
    if (s) await this.addTo(s, p);
  }

  /** The courier is replaced: one participant of an open session out, someone in. */
  private async replace(i: number, p: number, q: number): Promise<void> {
    const s = pick(
      this.open().filter((o) => o.participants.length > 0),
      i,
    );
    if (!s) return;
    await this.removeFrom(s, s.participants[p % s.participants.length] as ModelParticipant);
    await this.addTo(s, q);
  }

  /**
   * The courier is replaced in one step (PUT): all or nothing. The newcomer takes over the proxy
   * when it is local to them and not theirs already; otherwise a shared session (whose one proxy
   * it is) refuses them, and any other gets them a proxy as an add would.
   */
  private async put(i: number, p: number, q: number): Promise<void> {
    // Mostly open sessions with someone in them; now and then any session, or someone already out.
    const live = this.open().filter((o) => o.participants.length > 0);
    const s = pick(i % 5 !== 0 && live.length > 0 ? live : this.sessions, i >> 3);
    const target = s && pick(p % 6 === 0 && s.removed.length > 0 ? s.removed : s.participants, p);
    if (!s || !target) return;
    const person = this.newcomerFor(s, q);
    const state = this.state(s);
    const current = s.participants.includes(target);
    const cooling = await this.cooling([person.number]);
    const r = await this.t.api('PUT', `/v1/sessions/${s.id}/participants/${target.id}`, {
      number: person.number,
    });
    this.trace.push(
      `put ${person.number} for ${target.number} in ${s.label} (${state}, ${s.mode}${current ? '' : ', already out'}) → ${r.statusCode} ${summary(r)}`,
    );
    if (state !== 'open') {
      expectError(r, 409, 'conflict');
      return;
    }
    const inSession = s.participants.some((o) => o.number === person.number);
    if (!current) {
      // A retry of a replacement made finds its newcomer in: the session as it is.
      if (!inSession) {
        expectError(r, 404, 'not_found');
        return;
      }
      assert.equal(r.statusCode, 200, r.body);
      this.expectParticipants(s, r.json().participants);
      return;
    }
    if (person.number === target.number) {
      assert.equal(r.statusCode, 200, r.body);
      this.expectParticipants(s, r.json().participants);
      return;
    }
    if (inSession) {
      expectError(r, 409, 'conflict');
      return;
    }
    const rest = s.participants.filter((o) => o !== target);
    const proxyCountry = this.pool.find((n) => n.number === target.proxy)?.country;
    const held = this.held(person.number);
    const takesOver = proxyCountry === person.country && !held.has(target.proxy);
    if (!takesOver && s.mode === 'shared' && rest.length > 0) {
      if (proxyCountry !== person.country) {
        assert.ok(
          r.statusCode === 400 || r.statusCode === 409,
          `a shared session's proxy is local to one country: got ${r.statusCode} ${r.body}`,
        );
      } else expectError(r, 409, 'conflict');
      return;
    }
    if (!takesOver && held.size >= this.countryPool(person.country).length) {
      expectError(r, 503, 'pool_exhausted');
      return;
    }
    assert.equal(r.statusCode, 200, `put must succeed while the newcomer can get a proxy: ${r.body}`);
    const shown = r.json().participants as { id: string; number: string; proxyNumber: string }[];
    const newcomer = shown[shown.length - 1] as (typeof shown)[0];
    assert.equal(newcomer.number, person.number);
    if (takesOver) assert.equal(newcomer.proxyNumber, target.proxy, 'the newcomer takes over the proxy');
    else this.expectPreferred(newcomer.proxyNumber, [person], cooling);
    s.participants = [...rest, { id: newcomer.id, number: newcomer.number, proxy: newcomer.proxyNumber }];
    s.removed.push(target);
    this.expectParticipants(s, shown);
  }

  /** Someone to join a session: a third of the time from another country than its first member. */
  private newcomerFor(s: ModelSession, p: number): Person {
    const member = s.participants[0] && personOf(s.participants[0].number);
    const foreign = PEOPLE.filter((q) => member && q.country !== member.country);
    return (p % 3 === 0 && foreign.length > 0 ? pick(foreign, p >> 2) : PEOPLE[p % PEOPLE.length]) as Person;
  }

  private async addTo(s: ModelSession, p: number): Promise<void> {
    // A third of the time someone from another country than the member: a shared session must refuse them.
    const person = this.newcomerFor(s, p);
    const state = this.state(s);
    const cooling = await this.cooling([person.number]);
    const r = await this.t.api('POST', `/v1/sessions/${s.id}/participants`, { number: person.number });
    this.trace.push(
      `add ${person.number} to ${s.label} (${state}, ${s.mode}) → ${r.statusCode} ${summary(r)}`,
    );

    const existing = s.participants[0];
    const held = this.held(person.number);
    if (
      state !== 'open' ||
      s.participants.length >= 2 ||
      s.participants.some((q) => q.number === person.number)
    ) {
      expectError(r, 409, 'conflict');
      return;
    }
    if (s.mode === 'shared' && existing) {
      // The session's one proxy is fixed: it must be local to the newcomer too, and not already theirs.
      if (personOf(existing.number)?.country !== person.country) {
        assert.ok(
          r.statusCode === 400 || r.statusCode === 409,
          `a shared session's proxy is local to one country: adding someone of another country must be refused, got ${r.statusCode} ${r.body}`,
        );
        return;
      }
      if (held.has(existing.proxy)) {
        expectError(r, 409, 'conflict');
        return;
      }
    } else if (held.size >= this.countryPool(person.country).length) {
      expectError(r, 503, 'pool_exhausted');
      return;
    }
    assert.equal(r.statusCode, 201, `add must succeed while the pool has room: ${r.body}`);
    const added = r.json();
    assert.equal(added.number, person.number);
    if (s.mode === 'shared' && existing) assert.equal(added.proxyNumber, existing.proxy);
    else this.expectPreferred(added.proxyNumber, [person], cooling);
    s.participants.push({ id: added.id, number: added.number, proxy: added.proxyNumber });
  }

  private async remove(i: number, p: number): Promise<void> {
    // Mostly open sessions: removals there make room for adds.
    const live = this.open();
    const s = pick(i % 4 !== 0 && live.length > 0 ? live : this.sessions, i >> 2);
    const participant = s && pick([...s.participants, ...s.removed], p);
    if (s && participant) await this.removeFrom(s, participant);
  }

  private async removeFrom(s: ModelSession, participant: ModelParticipant): Promise<void> {
    const state = this.state(s);
    const current = s.participants.includes(participant);
    const r = await this.t.api('DELETE', `/v1/sessions/${s.id}/participants/${participant.id}`);
    this.trace.push(
      `remove ${participant.number} from ${s.label} (${state}${current ? '' : ', already out'}) → ${r.statusCode} ${summary(r)}`,
    );
    if (state !== 'open') {
      expectError(r, 409, 'conflict');
      return;
    }
    if (!current) {
      expectError(r, 404, 'not_found');
      return;
    }
    assert.equal(r.statusCode, 200, r.body);
    s.participants = s.participants.filter((q) => q !== participant);
    s.removed.push(participant);
    this.expectParticipants(s, r.json().participants);
  }

  private async route(op: Extract<Op, { kind: 'route' }>): Promise<void> {
    const channel = op.sms ? 'sms' : 'voice';
    // Most calls replay a participation that exists (hit 1) or existed (hit 2); the rest are random.
    const known = (op.hit === 1 ? this.open() : this.sessions).flatMap((s) =>
      op.hit === 1 ? s.participants : [...s.participants, ...s.removed],
    );
    const replay = op.hit > 0 ? pick(known, op.from) : undefined;
    const from = replay?.number ?? (pick([...PEOPLE.map((p) => p.number), STRANGER], op.from) as string);
    const to = replay?.proxy ?? (pick([...this.pool.map((n) => n.number), NOT_A_PROXY], op.to) as string);
    const body = op.sms ? 'see you at the door' : undefined;
    const r = await this.t.api('POST', '/v1/route', { from, to, channel, ...(body ? { body } : {}) });
    this.trace.push(`route ${channel} ${from} → ${to} → ${r.statusCode} ${r.body}`);
    assert.equal(r.statusCode, 200, r.body);

    const session = this.open().find((s) => s.participants.some((p) => p.number === from && p.proxy === to));
    const other = session?.participants.find((p) => p.number !== from);
    let expected: Record<string, unknown>;
    // A refused call says what the caller hears; a refused text says nothing.
    const said = channel === 'voice' ? { message: { text: DEFAULT_REJECT_MESSAGE } } : {};
    if (!session) expected = { action: 'reject', reason: 'no_session', ...said, sessionId: null };
    else if (!other)
      expected = { action: 'reject', reason: 'no_counterpart', ...said, sessionId: session.id };
    else if (channel === 'sms') {
      expected = { action: 'forward', to: other.number, from: other.proxy, body, sessionId: session.id };
    } else {
      expected = {
        action: 'connect',
        to: other.number,
        callerId: other.proxy,
        sessionId: session.id,
        record: false,
        maxCallSeconds: null,
      };
    }
    // Nobody's real number travels in the answer, except the callee's when the call is connected.
    const callee = expected.action === 'reject' ? undefined : other?.number;
    for (const p of [...PEOPLE.map((q) => q.number), STRANGER]) {
      if (p !== callee) assert.ok(!r.body.includes(p), `the route answer reveals ${p}: ${r.body}`);
    }
    assert.deepEqual(r.json(), expected);
  }

  private async get(i: number): Promise<void> {
    const s = pick(this.sessions, i);
    if (!s) return;
    const r = await this.t.api('GET', `/v1/sessions/${s.id}`);
    this.trace.push(`get ${s.label} → ${r.statusCode} ${summary(r)}`);
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().status, this.state(s));
    this.expectParticipants(s, r.json().participants);
  }

  private expectParticipants(
    s: ModelSession,
    shown: { id: string; number: string; proxyNumber: string }[],
  ): void {
    assert.deepEqual(
      shown.map((p) => ({ id: p.id, number: p.number, proxy: p.proxyNumber })),
      s.participants,
      `${s.label} shows exactly its current participants (removed ones are gone)`,
    );
  }

  /**
   * The allocation rule of DESIGN §1, for a proxy given to `people` (one, or both of a shared
   * session): of the country, not held by them; a number they held recently is avoided before the
   * region is given up, and the region is preferred to the rest of the country.
   */
  private expectPreferred(proxy: string, people: Person[], cooling: Map<string, Set<string>>): void {
    const country = (people[0] as Person).country;
    const held = new Set(people.flatMap((p) => [...this.held(p.number)]));
    const cool = new Set(people.flatMap((p) => [...(cooling.get(p.number) ?? [])]));
    const regions = new Set(people.map((p) => p.region));
    const inCountry = this.countryPool(country);
    const inRegion = inCountry.filter((n) => regions.has(n.region));
    const fresh = (n: PoolEntry) => !held.has(n.number) && !cool.has(n.number);
    const free = (n: PoolEntry) => !held.has(n.number);
    const tiers = [
      inRegion.filter(fresh),
      inCountry.filter(fresh),
      inRegion.filter(free),
      inCountry.filter(free),
    ];
    const tier = tiers.find((t) => t.length > 0) ?? [];
    assert.ok(
      tier.some((n) => n.number === proxy),
      `proxy ${proxy} for ${people.map((p) => p.number).join(' + ')}: expected one of ` +
        `[${tier.map((n) => n.number).join(', ')}] (held ${[...held].join(',') || '-'}, cooling ${[...cool].join(',') || '-'})`,
    );
  }

  /**
   * The proxies each person is cooling off from, read before an allocation: released within the
   * cooldown, or held in a session past its expiry (allocation ends those first, so they count as
   * just released).
   */
  private async cooling(numbers: string[]): Promise<Map<string, Set<string>>> {
    const rows = await this.t.veil.store.db
      .selectFrom('participants as p')
      .innerJoin('sessions as s', 's.id', 'p.session_id')
      .select(['p.number', 'p.proxy_number'])
      .where('p.number', 'in', numbers)
      .where((eb) =>
        eb.or([
          eb.and([eb('p.active', '=', 0), eb('p.released_at', '>', this.now - COOLDOWN_SECONDS * 1000)]),
          eb.and([eb('p.active', '=', 1), eb('s.expires_at', '<=', this.now)]),
        ]),
      )
      .execute();
    const map = new Map<string, Set<string>>();
    for (const r of rows) map.set(r.number, (map.get(r.number) ?? new Set()).add(r.proxy_number));
    return map;
  }

  /** The properties that hold after every step. */
  async check(): Promise<void> {
    const db = this.t.veil.store.db;
    // The invariant, from the model: a person's open sessions have pairwise different proxies.
    for (const p of PEOPLE) {
      const list = this.heldList(p.number);
      assert.equal(new Set(list).size, list.length, `${p.number} holds a proxy twice: ${list.join(', ')}`);
      for (const proxy of list) {
        assert.equal(
          this.pool.find((n) => n.number === proxy)?.country,
          p.country,
          `${p.number} got ${proxy}, a proxy of another country`,
        );
      }
    }
    // The invariant, from the database: no (real, proxy) pair twice among active participations.
    const doubles = await db
      .selectFrom('participants')
      .select(['number', 'proxy_number', (eb) => eb.fn.countAll().as('n')])
      .where('active', '=', 1)
      .groupBy(['number', 'proxy_number'])
      .having((eb) => eb.fn.countAll(), '>', 1)
      .execute();
    assert.deepEqual(doubles, [], 'a real number holds a proxy twice among active participations');
    // numbers.load is the count of sessions whose active participants hold the number.
    const loads = await db
      .selectFrom('numbers as n')
      .select((eb) => [
        'n.number',
        'n.load',
        eb
          .selectFrom('participants as p')
          .select((e) => e.fn.count<number>('p.session_id').distinct().as('c'))
          .where('p.active', '=', 1)
          .whereRef('p.proxy_number_id', '=', 'n.id')
          .as('holders'),
      ])
      .execute();
    for (const l of loads) {
      assert.equal(Number(l.load), Number(l.holders ?? 0), `load of ${l.number}`);
    }
    // The database agrees with the model: open sessions hold exactly the model's participants,
    // closed ones hold nothing, expired ones either still theirs (not yet ended) or nothing.
    const active = await db
      .selectFrom('participants')
      .select(['session_id', 'id', 'number', 'proxy_number'])
      .where('active', '=', 1)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    const bySession = new Map<string, ModelParticipant[]>();
    for (const a of active) {
      const list = bySession.get(a.session_id) ?? [];
      list.push({ id: a.id, number: a.number, proxy: a.proxy_number });
      bySession.set(a.session_id, list);
    }
    for (const s of this.sessions) {
      const rows = bySession.get(s.id) ?? [];
      bySession.delete(s.id);
      const state = this.state(s);
      const sort = (l: ModelParticipant[]) => [...l].sort((x, y) => x.id.localeCompare(y.id));
      if (state === 'open') assert.deepEqual(sort(rows), sort(s.participants), `${s.label} in the database`);
      else if (state === 'closed') assert.deepEqual(rows, [], `${s.label} is closed but holds proxies`);
      else if (rows.length > 0) assert.deepEqual(sort(rows), sort(s.participants), `${s.label} (expired)`);
    }
    assert.deepEqual([...bySession.keys()], [], 'active participants of sessions the test never opened');
    // Each session's expiry and status as stored: an expired one is ended lazily, so still open or expired.
    const stored = new Map(
      (await db.selectFrom('sessions').select(['id', 'status', 'expires_at']).execute()).map((r) => [
        r.id,
        r,
      ]),
    );
    for (const s of this.sessions) {
      const row = stored.get(s.id);
      const state = this.state(s);
      assert.equal(row?.expires_at, s.expiresAt, `${s.label} expires_at`);
      const allowed = state === 'expired' ? ['open', 'expired'] : [state];
      assert.ok(allowed.includes(row?.status ?? ''), `${s.label} is ${state} but stored ${row?.status}`);
    }
  }
}

function summary(r: LightMyRequestResponse): string {
  if (r.statusCode >= 300) return r.body;
  const b = r.json();
  if (Array.isArray(b.participants)) {
    return `${b.status} [${b.participants.map((p: { number: string; proxyNumber: string }) => `${p.number}→${p.proxyNumber}`).join(', ')}]`;
  }
  return b.proxyNumber ? `${b.number}→${b.proxyNumber}` : '';
}

function expectError(r: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(r.statusCode, status, `expected ${status} ${code}, got ${r.statusCode} ${r.body}`);
  assert.equal(r.json().error.code, code);
  // Error messages never carry a real number.
  for (const p of PEOPLE) assert.ok(!r.body.includes(p.number), `the error reveals ${p.number}: ${r.body}`);
}

describeStores('sessions, allocation and routing under random operations', (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store(), { VEIL_REUSE_COOLDOWN_SECONDS: String(COOLDOWN_SECONDS) });
  });
  after(async () => {
    await t?.close();
  });

  /** Empties the database between runs: each run brings its own pool. */
  async function reset(): Promise<void> {
    await t.veil.interactions.flush();
    const db = t.veil.store.db;
    for (const table of ['interactions', 'events', 'participants', 'sessions', 'numbers'] as const) {
      await db.deleteFrom(table).execute();
    }
  }

  async function fillPool(sizes: { '415': number; '212': number; GB: number }): Promise<PoolEntry[]> {
    const entries = [
      ...CANDIDATES['415'].slice(0, sizes['415']).map((number) => ({ number, country: 'US', region: '415' })),
      ...CANDIDATES['212'].slice(0, sizes['212']).map((number) => ({ number, country: 'US', region: '212' })),
      ...CANDIDATES.GB.slice(0, sizes.GB).map((number) => ({ number, country: 'GB', region: '20' })),
    ];
    const pool: PoolEntry[] = [];
    for (const e of entries) {
      const r = await t.api('POST', '/v1/numbers', { number: e.number, provider: 'sim' });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal(r.json().region, e.region);
      pool.push({ ...e, id: r.json().id });
    }
    return pool;
  }

  it('keeps the invariant, routes only within open sessions and exhausts the pool only when full', async () => {
    await fc.assert(
      fc.asyncProperty(
        poolArb,
        fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }),
        async (sizes, ops) => {
          await reset();
          const run = new Run(t, await fillPool(sizes));
          run.trace.push(
            `pool: ${run.pool.map((n) => n.number).join(', ')}; clock ${new Date(run.now).toISOString()}`,
          );
          try {
            for (const op of ops) {
              await run.step(op);
              await run.check();
            }
          } catch (error) {
            const steps = run.trace.join('\n');
            throw new Error(`${(error as Error).message}\n--- steps (the last one failed) ---\n${steps}`, {
              cause: error,
            });
          }
        },
      ),
      {
        numRuns: Number(process.env.FC_RUNS ?? 50),
        includeErrorInReport: true,
        ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}),
      },
    );
  });
});
