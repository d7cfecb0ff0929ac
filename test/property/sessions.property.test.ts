import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { DEFAULT_GATHER_PROMPT, DEFAULT_REJECT_MESSAGE } from '../../src/domain/routing.ts';
import { vaultOf } from '../../src/store/vault.ts';
import { numberOf, type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

/**
 * Random sequences of create (per-participant, shared, dedicated, with extension fallback or not) /
 * close / expire / sweep / renew / add / remove / replace (in two steps, or in one with PUT) / route
 * / read, driven through the HTTP API against a model of the sessions and of the pool's load.
 * Some pool numbers have a cap on their sessions, so that direct proxies run out and extension
 * fallback shares numbers. After every step: the invariant of DESIGN §1 (a person's direct proxies
 * are all different, from the model and from the participants table), a dedicated number in its own
 * session alone, an extension code naming one open participation on its number, numbers.load and
 * dedicatedTo against the model and the rows, and the database against the model. Allocation must
 * give exactly the number the search plan and its preference pick, or pool_exhausted exactly when
 * nothing fits; routing must connect exactly what the model says (a dedicated number reaches its
 * owner, who calls back the last caller within the window; an extension leads into its own session
 * only) and reveal no real number otherwise.
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
/** Never a participant: calls from here must never connect, except to a dedicated number's owner. */
const STRANGER = '+14155550199';
/** Never in the pool. */
const NOT_A_PROXY = '+14155550299';
const CANDIDATES = {
  '415': ['+14155550201', '+14155550202', '+14155550203'],
  '212': ['+12125550201', '+12125550202'],
  GB: ['+442079460201', '+442079460202'],
};
const SLOTS = CANDIDATES['415'].length + CANDIDATES['212'].length + CANDIDATES.GB.length;
const COOLDOWN_SECONDS = 600;
/** Shorter than most sessions' life and than a few `advance` steps: callbacks both in and past it. */
const CALLBACK_WINDOW_SECONDS = 120;
const MODES = ['per-participant', 'shared', 'dedicated'] as const;
type Mode = (typeof MODES)[number];
type PairMode = Exclude<Mode, 'dedicated'>;
/** A code never given: extensions are 1000–9999. */
const NO_SUCH_CODE = '0000';

interface PoolEntry extends Person {
  id: string;
  /** maxSessions, or null for no cap. */
  cap: number | null;
}

interface ModelParticipant {
  id: string;
  number: string;
  proxy: string;
  /** The code keyed after dialling `proxy` when it is shared by extension; null for a direct proxy. */
  extension: string | null;
}

interface ModelSession {
  id: string;
  label: string;
  mode: Mode;
  /** extensionFallback */
  ext: boolean;
  expiresAt: number;
  /** Set when this test closed it; an expiry is read from the clock. */
  closed: boolean;
  /**
   * Its participations released in the database: closed, swept, or past its expiry and ended by an
   * allocation for one of its people. Until then an expired session still holds its numbers.
   */
  ended: boolean;
  /** The participants now, or when it ended. */
  participants: ModelParticipant[];
  /** Participants taken out: their ids must answer 404, their numbers must not route. */
  removed: ModelParticipant[];
  /** Calls and texts put through within it, in order: a dedicated owner calls back the last caller. */
  routed: { from: string; at: number }[];
}

type State = 'open' | 'closed' | 'expired';

/** A proxy as allocation gives it: the number, and whether it is shared by extension. */
interface Taken {
  proxy: string;
  byExtension: boolean;
}

type Op =
  | { kind: 'create'; a: number; b: number; mode: PairMode | null; ttl: number | null }
  | { kind: 'fallback'; a: number; b: number; mode: PairMode | null; ttl: number | null; times: number }
  | { kind: 'dedicate'; a: number; ttl: number | null; bad: boolean }
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
  | { kind: 'dial'; target: number; who: number; digits: number; sms: boolean }
  | { kind: 'get'; s: number };

const ttlArb = fc.integer({ min: 1, max: 300 });
const pairModeArb = fc.constantFrom<PairMode | null>('per-participant', 'shared', null);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('create' as const),
      a: fc.nat(),
      b: fc.nat(),
      mode: pairModeArb,
      // Now and then no ttlSeconds: the default (a day) applies.
      ttl: fc.option(ttlArb, { freq: 8 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('fallback' as const),
      a: fc.nat(),
      b: fc.nat(),
      mode: pairModeArb,
      // A third of them live a day, so that later calls find numbers shared by code.
      ttl: fc.option(ttlArb, { freq: 2 }),
      // Several in a row fill the numbers' caps, so that the later ones share numbers by code.
      times: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('dedicate' as const),
      a: fc.nat(),
      // A third of them live a day, so that callers and callbacks find them open.
      ttl: fc.option(ttlArb, { freq: 2 }),
      // Now and then it asks for extension fallback too, which a dedicated number never is.
      bad: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
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
  {
    // A no-op while no session has a dedicated number or a code.
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('dial' as const),
      target: fc.nat(),
      who: fc.nat(),
      digits: fc.integer({ min: 0, max: 3 }),
      sms: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('get' as const), s: fc.nat() }) },
);

const poolArb = fc.record({
  '415': fc.integer({ min: 1, max: 3 }),
  '212': fc.integer({ min: 0, max: 2 }),
  GB: fc.integer({ min: 0, max: 2 }),
  // Each number's cap, in the order of CANDIDATES: mostly none; a cap of 1 or 2 fills up soon.
  caps: fc.array(fc.constantFrom<number | null>(null, 1, 1, 2), {
    minLength: SLOTS,
    maxLength: SLOTS,
  }),
});

const pick = <T>(list: readonly T[], i: number): T | undefined =>
  list.length === 0 ? undefined : list[i % list.length];
const personOf = (number: string): Person | undefined => PEOPLE.find((p) => p.number === number);
/** How many participants a complete session of the mode has. */
const sizeOf = (mode: Mode): number => (mode === 'dedicated' ? 1 : 2);

/** Each pool number's load (the sessions whose participations hold it) and its dedicated owner. */
interface Usage {
  load: Map<string, number>;
  owner: Map<string, string>;
}

/** A participant as the API shows it. */
interface Shown {
  id: string;
  number: string;
  proxyNumber: string;
  extension?: string;
}

const modelOf = (p: Shown): ModelParticipant => ({
  id: p.id,
  number: p.number,
  proxy: p.proxyNumber,
  extension: p.extension ?? null,
});

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

  /** The sessions whose participations the database still holds: open, or expired and not yet ended. */
  live(): ModelSession[] {
    return this.sessions.filter((s) => !s.ended);
  }

  /** The proxies a person holds in open sessions, directly or by a code (a list: no direct one repeats). */
  heldList(number: string, how: 'any' | 'direct' | 'coded' = 'any'): string[] {
    return this.open().flatMap((s) =>
      s.participants
        .filter(
          (p) => p.number === number && (how === 'any' || (how === 'direct') === (p.extension === null)),
        )
        .map((p) => p.proxy),
    );
  }

  held(number: string): Set<string> {
    return new Set(this.heldList(number));
  }

  countryPool(country: string): PoolEntry[] {
    return this.pool.filter((n) => n.country === country);
  }

  /** The sessions past their expiry that an allocation for these people ends before it searches. */
  staleOf(numbers: string[]): ModelSession[] {
    return this.live().filter(
      (s) => this.state(s) === 'expired' && s.participants.some((p) => numbers.includes(p.number)),
    );
  }

  /**
   * The pool's usage as the database has it, leaving out the sessions `without` (about to be ended)
   * and counting `replaced.session` with `replaced.participants` (a participant just released).
   */
  usage(
    without: readonly ModelSession[] = [],
    replaced?: { session: ModelSession; participants: ModelParticipant[] },
  ): Usage {
    const usage: Usage = { load: new Map(), owner: new Map() };
    for (const s of this.live()) {
      if (without.includes(s)) continue;
      const participants = replaced?.session === s ? replaced.participants : s.participants;
      for (const proxy of new Set(participants.map((p) => p.proxy))) {
        usage.load.set(proxy, (usage.load.get(proxy) ?? 0) + 1);
        if (s.mode === 'dedicated') usage.owner.set(proxy, s.id);
      }
    }
    return usage;
  }

  /**
   * The proxy allocation gives `people` (one participant, or both of a shared session) in a session
   * that holds `sessionHeld` already, or undefined when it must answer pool_exhausted. DESIGN §1:
   * a number of their country that none of them holds and that fits the use (a direct proxy under
   * its cap and dedicated to nobody; a dedicated one carrying no session at all); one they gave back
   * within the cooldown only when nothing else fits, their region before the rest of the country;
   * among those the mode's preference (least loaded; a shared pair packs onto the most loaded),
   * ties to the oldest (newest) number. Failing that, with extension fallback: the least-loaded
   * number dedicated to nobody that none of them holds directly, reached by a code. The take is
   * counted in `usage` and `sessionHeld`.
   */
  choose(
    people: Person[],
    mode: Mode,
    fallback: boolean,
    sessionHeld: Set<string>,
    usage: Usage,
    cooling: Map<string, Set<string>>,
  ): Taken | undefined {
    const country = (people[0] as Person).country;
    const load = (n: PoolEntry) => usage.load.get(n.number) ?? 0;
    const held = new Set(people.flatMap((p) => this.heldList(p.number)));
    const cool = new Set(people.flatMap((p) => [...(cooling.get(p.number) ?? [])]));
    const scopes = [...new Set(people.map((p) => p.region)), undefined];
    const within = (region: string | undefined) =>
      this.countryPool(country).filter((n) => region === undefined || n.region === region);
    const take = (found: PoolEntry[], packed: boolean, byExtension: boolean): Taken => {
      const [n] = [...found].sort((x, y) => {
        const order = load(x) - load(y) || (x.id < y.id ? -1 : 1);
        return packed ? -order : order;
      }) as [PoolEntry];
      if (!sessionHeld.has(n.number)) usage.load.set(n.number, load(n) + 1);
      sessionHeld.add(n.number);
      return { proxy: n.number, byExtension };
    };
    const fits = (n: PoolEntry) =>
      mode === 'dedicated'
        ? load(n) === 0
        : !usage.owner.has(n.number) && (n.cap === null || load(n) < n.cap);
    const cooled = people.some((p) => cooling.has(p.number)) ? [true, false] : [false];
    for (const avoidCooling of cooled) {
      for (const region of scopes) {
        const found = within(region).filter(
          (n) => fits(n) && !held.has(n.number) && !(avoidCooling && cool.has(n.number)),
        );
        if (found.length > 0) return take(found, mode === 'shared', false);
      }
    }
    if (mode === 'dedicated' || !fallback) return undefined;
    const direct = new Set(people.flatMap((p) => this.heldList(p.number, 'direct')));
    for (const region of scopes) {
      const found = within(region).filter((n) => !usage.owner.has(n.number) && !direct.has(n.number));
      if (found.length > 0) return take(found, false, true);
    }
    return undefined;
  }

  async step(op: Op): Promise<void> {
    switch (op.kind) {
      case 'create':
        return this.create(op, false);
      case 'fallback':
        for (let k = 0; k < op.times; k++) await this.create({ ...op, a: op.a + k, b: op.b + k }, true);
        return;
      case 'dedicate':
        return this.dedicate(op);
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
      case 'dial':
        return this.dial(op);
      case 'get':
        return this.get(op.s);
    }
  }

  private async create(op: Extract<Op, { kind: 'create' | 'fallback' }>, fallback: boolean): Promise<void> {
    const mode: PairMode = op.mode ?? 'per-participant';
    const a = PEOPLE[op.a % PEOPLE.length] as Person;
    const others = PEOPLE.filter((p) => p !== a);
    // A shared pair is mostly of one country (else it is refused); now and then it is not.
    const local = others.filter((p) => p.country === a.country);
    const b = pick(mode === 'shared' && op.b % 5 !== 0 && local.length > 0 ? local : others, op.b) as Person;
    const body = {
      ...(op.mode ? { mode: op.mode } : {}),
      ...(fallback ? { extensionFallback: true } : {}),
      ...(op.ttl !== null ? { ttlSeconds: op.ttl } : {}),
      participants: [{ number: a.number }, { number: b.number }],
    };
    if (mode === 'shared' && a.country !== b.country) {
      const r = await this.t.api('POST', '/v1/sessions', body);
      this.trace.push(`create ${mode} [${a.number}, ${b.number}] → ${r.statusCode} ${summary(r)}`);
      expectError(r, 400, 'invalid_request');
      return;
    }
    await this.opened(body, mode === 'shared' ? [[a, b]] : [[a], [b]], mode, fallback, op.ttl);
  }

  /** A dedicated number for one owner (AXN). */
  private async dedicate(op: Extract<Op, { kind: 'dedicate' }>): Promise<void> {
    const a = PEOPLE[op.a % PEOPLE.length] as Person;
    const body = {
      mode: 'dedicated',
      ...(op.bad ? { extensionFallback: true } : {}),
      ...(op.ttl !== null ? { ttlSeconds: op.ttl } : {}),
      participants: [{ number: a.number }],
    };
    if (op.bad) {
      const r = await this.t.api('POST', '/v1/sessions', body);
      this.trace.push(`create dedicated +ext [${a.number}] → ${r.statusCode} ${summary(r)}`);
      expectError(r, 400, 'invalid_request');
      return;
    }
    await this.opened(body, [[a]], 'dedicated', false, op.ttl);
  }

  /**
   * Creates a session whose participants come in `groups` (each group shares one proxy: both of a
   * shared session, else one each), checking each proxy against the model's allocation.
   */
  private async opened(
    body: Record<string, unknown>,
    groups: Person[][],
    mode: Mode,
    fallback: boolean,
    ttl: number | null,
  ): Promise<void> {
    const people = groups.flat();
    const cooling = await this.cooling(people.map((p) => p.number));
    const r = await this.t.api('POST', '/v1/sessions', body);
    const label = `S${this.sessions.length}`;
    this.trace.push(
      `create ${label} ${mode}${fallback ? ' +ext' : ''} [${people.map((p) => p.number).join(', ')}] ttl=${ttl ?? 'default'} → ${r.statusCode} ${summary(r)}`,
    );
    const stale = this.staleOf(people.map((p) => p.number));
    const usage = this.usage(stale);
    const sessionHeld = new Set<string>();
    const expected: Taken[] = [];
    for (const group of groups) {
      const taken = this.choose(group, mode, fallback, sessionHeld, usage, cooling);
      if (!taken) {
        expectError(r, 503, 'pool_exhausted');
        return;
      }
      for (const _ of group) expected.push(taken);
    }
    assert.equal(r.statusCode, 201, `create must succeed while the pool has room: ${r.body}`);
    const session = r.json();
    assert.equal(session.status, 'open');
    assert.equal(session.mode, mode);
    assert.equal(session.extensionFallback, fallback);
    assert.equal(Date.parse(session.expiresAt), this.now + (ttl ?? 86_400) * 1000, 'expiresAt');
    const participants: ModelParticipant[] = session.participants.map(modelOf);
    assert.deepEqual(
      participants.map((p) => p.number),
      people.map((p) => p.number),
    );
    this.expectTaken(participants, expected, cooling);
    for (const s of stale) s.ended = true;
    this.sessions.push({
      id: session.id,
      label,
      mode,
      ext: fallback,
      expiresAt: Date.parse(session.expiresAt),
      closed: false,
      ended: false,
      participants,
      removed: [],
      routed: [],
    });
  }

  /** Each participant got the proxy the model chose, with a code exactly when it is shared by one. */
  private expectTaken(
    participants: ModelParticipant[],
    expected: Taken[],
    cooling: Map<string, Set<string>>,
  ): void {
    for (const [i, p] of participants.entries()) {
      const want = expected[i] as Taken;
      const held = this.heldList(p.number).join(',') || '-';
      const cool = [...(cooling.get(p.number) ?? [])].join(',') || '-';
      const usage = this.usage();
      const loads = this.pool.map((n) => `${n.number}:${usage.load.get(n.number) ?? 0}/${n.cap ?? '∞'}`);
      assert.equal(
        p.proxy,
        want.proxy,
        `proxy for ${p.number}: expected ${want.proxy}${want.byExtension ? ' by extension' : ''} (held ${held}, cooling ${cool}, loads before ${loads.join(' ')})`,
      );
      if (want.byExtension) assert.match(p.extension ?? '', /^\d{4}$/, `${p.number} gets an extension`);
      else assert.equal(p.extension, null, `${p.number} on ${p.proxy} directly has no extension`);
    }
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
    s.ended = true;
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
    const due = this.live().filter((s) => this.state(s) === 'expired');
    assert.equal(ended, due.length, 'the sweeper ends exactly the sessions past their expiry');
    for (const s of due) s.ended = true;
    const left = await this.t.veil.store.db
      .selectFrom('sessions')
      .select('id')
      .where('status', '=', 'open')
      .where('expires_at', '<=', this.now)
      .execute();
    assert.deepEqual(left, [], 'the sweeper leaves no open session past its expiry');
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
    const roomy = this.open().filter((s) => s.participants.length < sizeOf(s.mode));
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
   * (and its extension code, if any) when it is local to them and not theirs already; otherwise a
   * shared session (whose one proxy it is) refuses them, and any other gets them a proxy as an add
   * would (a dedicated session: a number no session holds).
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
      `put ${person.number} for ${target.number} in ${s.label} (${state}, ${s.mode}${s.ext ? ' +ext' : ''}${current ? '' : ', already out'}) → ${r.statusCode} ${summary(r)}`,
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
    const stale = this.staleOf([person.number]);
    const expected = takesOver
      ? { proxy: target.proxy, byExtension: target.extension !== null }
      : this.choose(
          [person],
          s.mode,
          s.ext,
          new Set(rest.map((o) => o.proxy)),
          this.usage(stale, { session: s, participants: rest }),
          cooling,
        );
    if (!expected) {
      expectError(r, 503, 'pool_exhausted');
      return;
    }
    assert.equal(r.statusCode, 200, `put must succeed while the newcomer can get a proxy: ${r.body}`);
    const shown = r.json().participants as Shown[];
    const newcomer = modelOf(shown[shown.length - 1] as Shown);
    assert.equal(newcomer.number, person.number);
    this.expectTaken([newcomer], [expected], cooling);
    if (takesOver) assert.equal(newcomer.extension, target.extension, 'the newcomer takes over the code');
    for (const o of stale) o.ended = true;
    s.participants = [...rest, newcomer];
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
      `add ${person.number} to ${s.label} (${state}, ${s.mode}${s.ext ? ' +ext' : ''}) → ${r.statusCode} ${summary(r)}`,
    );

    const existing = s.participants[0];
    const held = this.held(person.number);
    if (
      state !== 'open' ||
      s.participants.length >= sizeOf(s.mode) ||
      s.participants.some((q) => q.number === person.number)
    ) {
      expectError(r, 409, 'conflict');
      return;
    }
    const stale = this.staleOf([person.number]);
    let expected: Taken | undefined;
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
      // Joined by code when the member reaches it by code.
      expected = { proxy: existing.proxy, byExtension: existing.extension !== null };
    } else {
      const sessionHeld = new Set(s.participants.map((q) => q.proxy));
      expected = this.choose([person], s.mode, s.ext, sessionHeld, this.usage(stale), cooling);
      if (!expected) {
        expectError(r, 503, 'pool_exhausted');
        return;
      }
    }
    assert.equal(r.statusCode, 201, `add must succeed while the pool has room: ${r.body}`);
    const added = modelOf(r.json());
    assert.equal(added.number, person.number);
    this.expectTaken([added], [expected], cooling);
    for (const o of stale) o.ended = true;
    s.participants.push(added);
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
    // Most calls replay a participation that exists (hit 1) or existed (hit 2); the rest are random.
    const known = (op.hit === 1 ? this.open() : this.sessions).flatMap((s) =>
      op.hit === 1 ? s.participants : [...s.participants, ...s.removed],
    );
    const replay = op.hit > 0 ? pick(known, op.from) : undefined;
    const from = replay?.number ?? (pick([...PEOPLE.map((p) => p.number), STRANGER], op.from) as string);
    const to = replay?.proxy ?? (pick([...this.pool.map((n) => n.number), NOT_A_PROXY], op.to) as string);
    await this.call(from, to, op.sms);
  }

  /**
   * A call or text to a dedicated number (from anyone, now and then its owner calling back, at times
   * at the callback window's end or past it) or to a
   * number shared by extension (with no code, the caller's own, another participation's on that
   * number, or one nobody has; from its participant, anyone, or a stranger).
   */
  private async dial(op: Extract<Op, { kind: 'dial' }>): Promise<void> {
    const anyone = [...PEOPLE.map((p) => p.number), STRANGER];
    // Mostly participations of open sessions; a quarter of the time any, ended or taken out.
    const all = (op.target % 4 === 3 ? this.sessions : this.open()).flatMap((s) =>
      (op.target % 4 === 3 ? [...s.participants, ...s.removed] : s.participants).map((p) => ({ s, p })),
    );
    const owned = all.filter(({ s }) => s.mode === 'dedicated');
    const coded = all.filter(({ p }) => p.extension !== null);
    if (owned.length > 0 && (op.who % 2 === 0 || coded.length === 0)) {
      const { s, p } = pick(owned, op.target >> 2) as (typeof owned)[number];
      // A third of the time the owner calls back, now and then just when the last caller's call
      // is as old as the callback window (still called back) or a second older (nobody); else
      // someone calls the number.
      const callback = op.who % 3 === 0;
      const last = s.routed.findLast((c) => c.from !== p.number);
      if (callback && last && op.digits >= 2) {
        const wait = (last.at - this.now) / 1000 + CALLBACK_WINDOW_SECONDS + (op.digits === 3 ? 1 : 0);
        if (wait > 0) {
          this.t.clock.advance(wait);
          this.trace.push(`advance ${wait}s`);
        }
      }
      await this.call(callback ? p.number : (pick(anyone, op.who >> 2) as string), p.proxy, op.sms);
      return;
    }
    const hit = pick(coded, op.target >> 2);
    if (!hit) return;
    const own = hit.p.extension as string;
    const from = [hit.p.number, hit.p.number, pick(anyone, op.who >> 2) as string, STRANGER][
      (op.who >> 1) % 4
    ] as string;
    const others = coded.filter((c) => c.p.proxy === hit.p.proxy && c.p.extension !== own);
    const another = pick(others, op.who)?.p.extension ?? NO_SUCH_CODE;
    const digits = [undefined, own, another, own][op.digits];
    await this.call(from, hit.p.proxy, op.sms, digits ?? undefined);
  }

  /** Routes one call or text and checks the decision against the model. */
  private async call(from: string, to: string, sms: boolean, digits?: string): Promise<void> {
    const channel = sms ? 'sms' : 'voice';
    const body = sms ? 'see you at the door' : undefined;
    const r = await this.t.api('POST', '/v1/route', {
      from,
      to,
      channel,
      ...(body ? { body } : {}),
      ...(digits !== undefined ? { digits } : {}),
    });
    this.trace.push(
      `route ${channel} ${from} → ${to}${digits !== undefined ? ` keying ${digits}` : ''} → ${r.statusCode} ${r.body}`,
    );
    assert.equal(r.statusCode, 200, r.body);
    const { expected, session } = this.expectedRoute(from, to, channel, body, digits);
    // Nobody's real number travels in the answer, except the callee's when the call is put through.
    const callee = expected.action === 'connect' || expected.action === 'forward' ? expected.to : undefined;
    for (const p of [...PEOPLE.map((q) => q.number), STRANGER]) {
      if (p !== callee) assert.ok(!r.body.includes(p), `the route answer reveals ${p}: ${r.body}`);
    }
    assert.deepEqual(r.json(), expected);
    if (session && callee !== undefined) session.routed.push({ from, at: this.now });
  }

  /**
   * The decision DESIGN §1 asks for, and the session the call or text is put through in:
   * - the caller's direct participation on the number dialled: to the other participant, shown the
   *   proxy they know; in a dedicated session (the owner dialling their number) to the most recent
   *   caller within the callback window;
   * - else a dedicated number: anyone reaches its owner, shown the number dialled;
   * - else a number shared by extension: a call is asked for a code, and the code leads only to the
   *   caller's own participation on that number (a wrong code, another's, or a stranger keying a
   *   valid one are refused alike); a text, which cannot key a code, is out of any session;
   * - else, or in a session past its expiry: no session.
   */
  private expectedRoute(
    from: string,
    to: string,
    channel: 'voice' | 'sms',
    body: string | undefined,
    digits: string | undefined,
  ): { expected: Record<string, unknown>; session?: ModelSession } {
    // A refused call says what the caller hears; a refused text says nothing.
    const said = channel === 'voice' ? { message: { text: DEFAULT_REJECT_MESSAGE } } : {};
    const reject = (reason: string, session?: ModelSession) => ({
      expected: { action: 'reject', reason, ...said, sessionId: session?.id ?? null },
    });
    const through = (session: ModelSession, callee: string, callerId: string) => ({
      session,
      expected:
        channel === 'sms'
          ? { action: 'forward', to: callee, from: callerId, body, sessionId: session.id }
          : {
              action: 'connect',
              to: callee,
              callerId,
              sessionId: session.id,
              record: false,
              maxCallSeconds: null,
            },
    });
    const counterpart = (s: ModelSession, p: ModelParticipant) => {
      const other = s.participants.find((q) => q !== p);
      return other ? through(s, other.number, other.proxy) : reject('no_counterpart', s);
    };
    // What the database holds: the participations of open sessions and of expired ones not yet ended.
    const rows = this.live().flatMap((s) => s.participants.map((p) => ({ s, p })));
    const direct = rows.find(({ p }) => p.number === from && p.proxy === to && p.extension === null);
    if (direct) {
      const { s, p } = direct;
      if (this.state(s) !== 'open') return reject('no_session');
      if (s.mode !== 'dedicated') return counterpart(s, p);
      const since = this.now - CALLBACK_WINDOW_SECONDS * 1000;
      const last = s.routed.findLast((c) => c.from !== p.number && c.at >= since);
      return last ? through(s, last.from, to) : reject('no_counterpart', s);
    }
    const owner = rows.find(({ s, p }) => s.mode === 'dedicated' && p.proxy === to);
    if (owner)
      return this.state(owner.s) === 'open' ? through(owner.s, owner.p.number, to) : reject('no_session');
    const coded = rows.filter(({ p }) => p.proxy === to && p.extension !== null);
    if (coded.length > 0 && channel === 'voice') {
      if (digits === undefined) {
        const prompt = DEFAULT_GATHER_PROMPT;
        return {
          expected: { action: 'gather', numDigits: 4, prompt, message: { text: prompt }, sessionId: null },
        };
      }
      const keyed = coded.find(({ p }) => p.extension === digits);
      if (!keyed || keyed.p.number !== from) return reject('wrong_extension');
      return this.state(keyed.s) === 'open' ? counterpart(keyed.s, keyed.p) : reject('no_session');
    }
    return reject('no_session');
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

  private expectParticipants(s: ModelSession, shown: Shown[]): void {
    assert.deepEqual(
      shown.map(modelOf),
      s.participants,
      `${s.label} shows exactly its current participants (removed ones are gone)`,
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
      .select(['p.number_sealed', 'p.proxy_number'])
      .where(
        'p.number_index',
        'in',
        numbers.map((n) => vaultOf(this.t.veil.store.db).index(n)),
      )
      .where((eb) =>
        eb.or([
          eb.and([eb('p.active', '=', 0), eb('p.released_at', '>', this.now - COOLDOWN_SECONDS * 1000)]),
          eb.and([eb('p.active', '=', 1), eb('s.expires_at', '<=', this.now)]),
        ]),
      )
      .execute();
    const map = new Map<string, Set<string>>();
    for (const r of rows) {
      const number = numberOf(this.t.veil.store.db, r);
      map.set(number, (map.get(number) ?? new Set()).add(r.proxy_number));
    }
    return map;
  }

  /** The properties that hold after every step. */
  async check(): Promise<void> {
    const db = this.t.veil.store.db;
    // The invariant, from the model: a person's direct proxies in open sessions are pairwise
    // different, and none of them is also one they reach by a code; all are of their country.
    for (const p of PEOPLE) {
      const direct = this.heldList(p.number, 'direct');
      assert.equal(
        new Set(direct).size,
        direct.length,
        `${p.number} holds a proxy twice: ${direct.join(', ')}`,
      );
      const coded = this.heldList(p.number, 'coded');
      for (const proxy of coded)
        assert.ok(!direct.includes(proxy), `${p.number} holds ${proxy} directly and by code`);
      for (const proxy of [...direct, ...coded]) {
        assert.equal(
          this.pool.find((n) => n.number === proxy)?.country,
          p.country,
          `${p.number} got ${proxy}, a proxy of another country`,
        );
      }
    }
    const active = await db
      .selectFrom('participants')
      .select(['session_id', 'id', 'number_index', 'number_sealed', 'proxy_number', 'extension'])
      .where('active', '=', 1)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    // The invariant, from the database: among active participations a real number holds a proxy
    // once directly or by codes, never twice directly nor both; a code names one participation on
    // its number.
    const holdings = new Map<string, string[]>();
    const codes = new Set<string>();
    for (const a of active) {
      const key = `${a.number_index} on ${a.proxy_number}`;
      holdings.set(key, [...(holdings.get(key) ?? []), a.extension]);
      if (a.extension === '') continue;
      const code = `${a.proxy_number} #${a.extension}`;
      assert.ok(!codes.has(code), `two active participations have ${code}`);
      codes.add(code);
    }
    for (const [key, extensions] of holdings) {
      if (extensions.includes('')) assert.equal(extensions.length, 1, `${key}: ${extensions.join('|')}`);
    }
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
    // closed ones and ended ones hold nothing, expired ones not yet ended still theirs.
    const bySession = new Map<string, ModelParticipant[]>();
    for (const a of active) {
      const list = bySession.get(a.session_id) ?? [];
      list.push({ id: a.id, number: numberOf(db, a), proxy: a.proxy_number, extension: a.extension || null });
      bySession.set(a.session_id, list);
    }
    const sort = (l: ModelParticipant[]) => [...l].sort((x, y) => x.id.localeCompare(y.id));
    for (const s of this.sessions) {
      const rows = bySession.get(s.id) ?? [];
      bySession.delete(s.id);
      const state = this.state(s);
      if (s.ended) assert.deepEqual(rows, [], `${s.label} (${state}) has ended but holds proxies`);
      else assert.deepEqual(sort(rows), sort(s.participants), `${s.label} (${state}) in the database`);
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
      const allowed = state === 'expired' ? (s.ended ? ['expired'] : ['open']) : [state];
      assert.ok(allowed.includes(row?.status ?? ''), `${s.label} is ${state} but stored ${row?.status}`);
    }
    await this.checkApi();
  }

  /**
   * The same through the API: the open sessions are the model's; each number's load and dedicated
   * owner are the model's; a dedicated number is in no open session but its own; an extension
   * code names one open participation on its number.
   */
  private async checkApi(): Promise<void> {
    const sessions = (await this.t.api('GET', '/v1/sessions?status=open&limit=500')).json().data as {
      id: string;
      mode: Mode;
      participants: Shown[];
    }[];
    assert.deepEqual(
      sessions.map((s) => s.id).sort(),
      this.open()
        .map((s) => s.id)
        .sort(),
      'the open sessions',
    );
    const numbers = (await this.t.api('GET', '/v1/numbers?limit=500')).json().data as {
      number: string;
      load: number;
      dedicatedTo: string | null;
    }[];
    const usage = this.usage();
    for (const n of numbers) {
      assert.equal(n.load, usage.load.get(n.number) ?? 0, `load of ${n.number}`);
      assert.equal(n.dedicatedTo, usage.owner.get(n.number) ?? null, `${n.number} dedicated to`);
      const holders = sessions.filter((s) => s.participants.some((p) => p.proxyNumber === n.number));
      if (n.dedicatedTo) {
        assert.ok(
          holders.every((s) => s.id === n.dedicatedTo),
          `${n.number} is dedicated to ${n.dedicatedTo} but held by ${holders.map((s) => s.id).join(', ')}`,
        );
      }
    }
    const codes = new Set<string>();
    for (const s of sessions) {
      if (s.mode === 'dedicated') {
        assert.ok(s.participants.length <= 1, `${s.id} is dedicated to one owner`);
        const [owner] = s.participants;
        if (owner) {
          assert.equal(owner.extension, undefined, 'a dedicated number is never reached by code');
          const n = numbers.find((m) => m.number === owner.proxyNumber);
          assert.equal(n?.dedicatedTo, s.id, `${owner.proxyNumber} belongs to ${s.id} alone`);
        }
      }
      for (const p of s.participants) {
        if (p.extension === undefined) continue;
        const code = `${p.proxyNumber} #${p.extension}`;
        assert.ok(!codes.has(code), `two open participations have ${code}`);
        codes.add(code);
      }
    }
  }
}

function summary(r: LightMyRequestResponse): string {
  if (r.statusCode >= 300) return r.body;
  const b = r.json();
  const shown = (p: Shown) => `${p.number}→${p.proxyNumber}${p.extension ? ` #${p.extension}` : ''}`;
  if (Array.isArray(b.participants)) return `${b.status} [${b.participants.map(shown).join(', ')}]`;
  return b.proxyNumber ? shown(b) : '';
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
    t = await testApp(store(), {
      VEIL_REUSE_COOLDOWN_SECONDS: String(COOLDOWN_SECONDS),
      VEIL_CALLBACK_WINDOW_SECONDS: String(CALLBACK_WINDOW_SECONDS),
    });
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

  async function fillPool(sizes: {
    '415': number;
    '212': number;
    GB: number;
    caps: (number | null)[];
  }): Promise<PoolEntry[]> {
    const slots = [
      ...CANDIDATES['415'].map((number, i) => ({
        number,
        country: 'US',
        region: '415',
        take: i < sizes['415'],
      })),
      ...CANDIDATES['212'].map((number, i) => ({
        number,
        country: 'US',
        region: '212',
        take: i < sizes['212'],
      })),
      ...CANDIDATES.GB.map((number, i) => ({ number, country: 'GB', region: '20', take: i < sizes.GB })),
    ];
    const pool: PoolEntry[] = [];
    for (const [i, { take, ...e }] of slots.entries()) {
      if (!take) continue;
      const cap = sizes.caps[i] ?? null;
      const r = await t.api('POST', '/v1/numbers', {
        number: e.number,
        provider: 'sim',
        ...(cap !== null ? { maxSessions: cap } : {}),
      });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal(r.json().region, e.region);
      assert.equal(r.json().maxSessions, cap);
      pool.push({ ...e, id: r.json().id, cap });
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
            `pool: ${run.pool.map((n) => `${n.number}${n.cap !== null ? ` (cap ${n.cap})` : ''}`).join(', ')}; clock ${new Date(run.now).toISOString()}`,
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
