import { randomInt } from 'node:crypto';
import {
  type CarrierWeights,
  carrierRounds,
  type ProxyPreference,
  type ProxySearch,
  type ProxyUse,
  proxySearchPlan,
} from '../domain/allocation.ts';
import { bindsRemotely, fitsRemoteBinding } from '../domain/binding.ts';
import { ConflictError, InvalidRequestError, PoolExhaustedError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import { parsePhone } from '../domain/phone.ts';
import { usableCarriers } from '../domain/providers.ts';
import {
  EXTENSION_DIGITS,
  type Participant,
  type ParticipantRequest,
  type Session,
} from '../domain/session.ts';
import { NumberRepository } from '../store/numbers.ts';
import { providerFlags } from '../store/providers.ts';
import type { Db } from '../store/schema.ts';
import { SessionRepository } from '../store/sessions.ts';
import { endSession } from './session-end.ts';

/** A number taken for a participant; `byExtension` when it is shared and reached with a code. */
interface Proxy {
  id: string;
  number: string;
  /** Its carrier, or undefined for a shared session's proxy, which the session already holds. */
  provider?: string;
  byExtension: boolean;
}

/** What allocation is told by the installation. */
export interface AllocationSettings {
  /** Seconds a number given back is passed over for the people who had it (DESIGN §1). */
  reuseCooldownSeconds: number;
  /** The carriers that route, whose numbers may be taken: never `sim` in production. */
  carriers: readonly string[];
  /** Which carrier new sessions use, by weight (VEIL_CARRIER_WEIGHTS); all alike when absent. */
  weights?: CarrierWeights;
}

/** What the same two people had before, for `sticky`: each one's latest proxy, and all of them. */
interface FormerProxies {
  latest: Map<string, string>;
  all: string[];
}

/** How many past sessions of the same two people `sticky` looks at. */
const STICKY_HISTORY = 20;
/** Codes tried on a shared number before it counts as full (each try is one index probe). */
const EXTENSION_TRIES = 50;

/**
 * Chooses proxy numbers for new participants of one session, inside its transaction. It first
 * expires the people's stale sessions (so a session past its expiry holds nothing even before the
 * sweeper runs), then takes, for each participant: the number they asked for (`proxyNumber`), or
 * the one they had with the same counterpart (`sticky: prefer`), or the first number of the search
 * plan that fits; failing all, a shared number with an extension code when the session allows it.
 * All proxies of a session come from one carrier, since a call's outbound leg can only show a
 * caller ID its carrier owns: the session's first proxy chooses it. The caller writes the
 * participants it returns.
 */
export class Allocator {
  private readonly sessions: SessionRepository;
  private readonly numbers: NumberRepository;

  constructor(
    private readonly trx: Db,
    private readonly tenantId: string,
    private readonly session: Session,
    private readonly now: number,
    private readonly settings: AllocationSettings,
    private readonly preference: ProxyPreference,
  ) {
    this.sessions = new SessionRepository(trx);
    this.numbers = new NumberRepository(trx);
  }

  async allocate(requests: readonly ParticipantRequest[]): Promise<Participant[]> {
    const cooling = await this.histories(requests.map((r) => r.phone.e164));
    const former = await this.formerProxies(requests);
    const own = await this.sessionCarrier();
    if (own) return this.allocateOn([own], requests, cooling, former, []);
    // A new session, tried on the carriers round by round (carrierRounds: all at once, or one at
    // a time by the gray release's weights). When its first proxy's carrier has nothing for the
    // others, what it took there is given back and the session tried on the round's other
    // carriers, then the next round's (unless a number asked for chose the carrier).
    const asked = requests.some((r) => r.proxyNumber);
    const person = requests[0]?.phone;
    // A remote-binding carrier's numbers serve only the sessions it can bind (AXB): for any
    // other, such a carrier has no number that fits.
    const remote = fitsRemoteBinding(this.session, requests);
    // A carrier switched off or found down gives no number to a new session (one read, shared by
    // every instance).
    const usable = usableCarriers(
      this.settings.carriers,
      await providerFlags(this.trx, this.settings.carriers),
    );
    if (usable.length === 0) throw new PoolExhaustedError('no carrier is up: each is switched off or down');
    const carriers = usable.filter((c) => remote || !bindsRemotely(c));
    const rounds = person ? carrierRounds(carriers, this.settings.weights, person) : [];
    let first: unknown;
    for (let carriers = rounds.shift(); carriers && carriers.length > 0; carriers = rounds.shift()) {
      const taken: Proxy[] = [];
      try {
        return await this.allocateOn(carriers, requests, cooling, former, taken);
      } catch (error) {
        // What the first carrier lacked says most about the pool: that is the error told.
        first ??= error;
        if (!(error instanceof PoolExhaustedError) || asked) throw first;
        const tried = taken[0]?.provider;
        if (tried) {
          await this.numbers.release(new Set(taken.map((p) => p.id)), this.now);
          const others = carriers.filter((c) => c !== tried);
          if (others.length > 0) rounds.unshift(others);
        }
      }
    }
    throw first ?? new PoolExhaustedError('no carrier routes here: its numbers cannot be allocated');
  }

  /** The carrier of the proxies the session holds already; undefined for a new session. */
  private async sessionCarrier(): Promise<string | undefined> {
    const member = this.session.participants[0];
    return member && (await this.numbers.get(this.tenantId, member.proxyNumberId))?.provider;
  }

  /** The participants' proxies from `carriers`, then from the first one's; each taken is kept in `taken`. */
  private async allocateOn(
    carriers: readonly string[],
    requests: readonly ParticipantRequest[],
    cooling: ReadonlySet<string>,
    former: FormerProxies | undefined,
    taken: Proxy[],
  ): Promise<Participant[]> {
    const held = new Set(this.session.participants.map((p) => p.proxyNumberId));
    const sharedPick =
      this.session.mode !== 'shared'
        ? undefined
        : this.session.participants[0]
          ? await this.joinShared(this.session.participants[0], requests)
          : await this.pick(carriers, requests, cooling, former, held, 'participants');
    if (sharedPick) taken.push(sharedPick);
    const participants: Participant[] = [];
    const codes = new Set<string>();
    for (const [i, request] of requests.entries()) {
      const on = taken[0]?.provider ? [taken[0].provider] : carriers;
      const proxy =
        sharedPick ?? (await this.pick(on, [request], cooling, former, held, `participants/${i}`));
      if (!sharedPick) taken.push(proxy);
      const extension = proxy.byExtension ? await this.freeExtension(proxy.number, codes) : null;
      const participant: Participant = {
        id: newId('par', this.now),
        sessionId: this.session.id,
        number: request.phone.e164,
        label: request.label,
        proxyNumberId: proxy.id,
        proxyNumber: proxy.number,
        revealNumber: request.revealNumber,
        canInitiate: request.canInitiate,
        extension,
        // Nothing routes before the carrier confirmed: the binding worker makes it.
        binding: bindsRemotely(proxy.provider) ? 'binding' : null,
        createdAt: this.now,
      };
      held.add(proxy.id);
      participants.push(participant);
    }
    return participants;
  }

  /**
   * A shared session keeps its one proxy for life: a newcomer gets the number the session has,
   * which must be local to them and not already theirs in another open session.
   */
  private async joinShared(member: Participant, requests: readonly ParticipantRequest[]): Promise<Proxy> {
    const country = parsePhone(member.proxyNumber, 'proxyNumber').country;
    for (const request of requests) {
      if (request.phone.country !== country) {
        throw new InvalidRequestError(
          `this shared session's proxy is local to ${country}; the newcomer is not`,
          'number',
        );
      }
      if (request.proxyNumber && request.proxyNumber.e164 !== member.proxyNumber) {
        throw new ConflictError('a shared session has one proxy; the newcomer cannot ask for another');
      }
      if (await this.sessions.holds(request.phone.e164, member.proxyNumber)) {
        throw new ConflictError('the newcomer already holds this shared session’s proxy in another session');
      }
    }
    return { id: member.proxyNumberId, number: member.proxyNumber, byExtension: member.extension !== null };
  }

  /** Numbers given back after this moment are within the reuse cooldown. */
  private get coolingSince(): number {
    return this.now - this.settings.reuseCooldownSeconds * 1000;
  }

  /**
   * Expires the people's stale sessions (so that they hold nothing, even before the sweeper runs)
   * and says which of the people gave a number back within the reuse cooldown, those stale
   * sessions' numbers included: they are given back now.
   */
  async histories(people: string[]): Promise<Set<string>> {
    const { stale, gaveBack } = await this.sessions.histories(people, this.now, this.coolingSince);
    for (const sessionId of new Set(stale.map((h) => h.sessionId))) {
      const session = await this.sessions.get(this.tenantId, sessionId);
      // A stale session of another tenant is left to the sweeper; its numbers are not in this pool.
      if (session) await endSession(this.trx, session, 'expired', this.now);
    }
    return new Set([...gaveBack, ...stale.map((h) => h.number)]);
  }

  /**
   * For a sticky session of two people, the proxies they had in their past sessions together,
   * newest first (read after the stale sessions ended, so those count as past).
   */
  private async formerProxies(requests: readonly ParticipantRequest[]): Promise<FormerProxies | undefined> {
    const pair = [...this.session.participants.map((p) => p.number), ...requests.map((r) => r.phone.e164)];
    const [a, b] = pair;
    if (this.session.sticky === 'none' || pair.length !== 2 || !a || !b) return undefined;
    const rows = await this.sessions.formerProxies(a, b, STICKY_HISTORY);
    const latest = new Map<string, string>();
    for (const row of rows) {
      if (!latest.has(a)) latest.set(a, row.proxyA);
      if (!latest.has(b)) latest.set(b, row.proxyB);
    }
    return { latest, all: [...new Set(rows.flatMap((r) => [r.proxyIdA, r.proxyIdB]))] };
  }

  /** The best number for these people (one, or both of a shared session), counted as taken. */
  private async pick(
    carriers: readonly string[],
    requests: readonly ParticipantRequest[],
    cooling: ReadonlySet<string>,
    former: FormerProxies | undefined,
    held: ReadonlySet<string>,
    field: string,
  ): Promise<Proxy> {
    const use: ProxyUse = this.session.mode === 'dedicated' ? 'dedicated' : 'direct';
    const session = { id: this.session.id, held };
    const wanted = requests.find((r) => r.proxyNumber)?.proxyNumber;
    if (wanted) return this.takeWanted(carriers, requests, wanted.e164, use, session, field);
    const take = async (search: ProxySearch) => {
      const found = await this.numbers.takeProxy(search, session, this.now);
      return found && { ...found, byExtension: search.use === 'extension' };
    };
    const request = {
      use,
      tenantId: this.tenantId,
      carriers,
      people: requests.map((r) => r.phone),
      geoMatch: this.session.geoMatch,
      channels: this.session.channels,
      preference: this.preference,
    };
    const [first] = proxySearchPlan(request);
    // The same two people again: their former proxy first, even over less loaded numbers and
    // within the cooldown (which keeps a redial from reaching a stranger; this is no stranger).
    const formerNumber =
      this.session.sticky === 'prefer' && former?.latest.get(requests[0]?.phone.e164 ?? '');
    if (first && formerNumber) {
      const found = await take({ ...first, region: undefined, number: formerNumber });
      if (found) return found;
    }
    const coolingSince = requests.some((r) => cooling.has(r.phone.e164)) ? this.coolingSince : undefined;
    const avoid = this.session.sticky === 'avoid' ? former?.all : undefined;
    for (const search of proxySearchPlan({ ...request, coolingSince, avoid })) {
      const found = await take(search);
      if (found) return found;
    }
    // A number shared by extension is Veil's to route: never a remote-binding carrier's.
    const local = carriers.filter((c) => !bindsRemotely(c));
    if (use === 'direct' && this.session.extensionFallback && local.length > 0) {
      const byExtension = {
        ...request,
        carriers: local,
        use: 'extension' as const,
        preference: 'least-loaded' as const,
      };
      for (const search of proxySearchPlan(byExtension)) {
        const found = await take(search);
        if (found) return found;
      }
    }
    const where = requests[0]?.phone.country ?? '';
    throw new PoolExhaustedError(`no proxy number in ${where} is free for ${field}`);
  }

  /**
   * The pool number a participant asked for (Alibaba's PhoneNoX): taken when it keeps the
   * invariant and has room, else the request fails saying why. Other people holding it do not
   * matter; neither does the cooldown (the participant chose it).
   */
  private async takeWanted(
    carriers: readonly string[],
    requests: readonly ParticipantRequest[],
    number: string,
    use: ProxyUse,
    session: { id: string; held: ReadonlySet<string> },
    field: string,
  ): Promise<Proxy> {
    const at = `${field}/proxyNumber`;
    const pool = await this.numbers.findByNumber(number);
    if (!pool || pool.tenantId !== this.tenantId || pool.status === 'retired') {
      throw new InvalidRequestError(`${number} is not a number of the pool`, at);
    }
    const country = requests[0]?.phone.country;
    if (pool.country !== country) {
      throw new InvalidRequestError(`${number} is not local to the participant (${country})`, at);
    }
    const missing = this.session.channels.find((c) => !pool.capabilities.includes(c));
    if (missing) throw new InvalidRequestError(`${number} cannot carry ${missing}`, at);
    if (bindsRemotely(pool.provider) && !carriers.includes(pool.provider)) {
      throw new ConflictError(
        `${number} is a ${pool.provider} number, bound at the carrier: it serves only shared (AXB) sessions with a fixed expiry, no maxCallSeconds, and participants who may all call and show no real number`,
      );
    }
    if (!carriers.includes(pool.provider)) {
      throw carriers.length === 1 &&
        carriers[0] !== pool.provider &&
        this.settings.carriers.includes(pool.provider)
        ? new ConflictError(
            `${number} is a ${pool.provider} number; this session's proxies are ${carriers[0]}'s`,
          )
        : new InvalidRequestError(`${number} belongs to ${pool.provider}, which does not route here`, at);
    }
    const search: ProxySearch = {
      use,
      tenantId: this.tenantId,
      carriers: [pool.provider],
      country: pool.country,
      channels: this.session.channels,
      people: requests.map((r) => r.phone.e164),
      preference: this.preference,
      number,
    };
    const found = await this.numbers.takeProxy(search, session, this.now);
    if (found) return { ...found, byExtension: false };
    for (const r of requests) {
      if (await this.sessions.holds(r.phone.e164, number)) {
        throw new ConflictError(`${field} already holds ${number} in another open session`);
      }
    }
    if (pool.status === 'draining')
      throw new ConflictError(`${number} is draining: it takes no new sessions`);
    if (pool.dedicatedTo) throw new ConflictError(`${number} is dedicated to another open session`);
    if (use === 'dedicated')
      throw new ConflictError(`${number} is held by open sessions: it cannot be dedicated`);
    throw new ConflictError(`${number} carries all the sessions its cap allows`);
  }

  /** A code for a participation on a shared number that no open participation on it has. */
  private async freeExtension(proxyNumber: string, taken: Set<string>): Promise<string> {
    const low = 10 ** (EXTENSION_DIGITS - 1);
    for (let i = 0; i < EXTENSION_TRIES; i++) {
      const code = String(randomInt(low, low * 10));
      if (taken.has(code) || (await this.sessions.extensionTaken(proxyNumber, code))) continue;
      taken.add(code);
      return code;
    }
    throw new PoolExhaustedError(`${proxyNumber} has no free extension left`);
  }
}
