import { type ProxyPreference, proxySearchPlan } from '../domain/allocation.ts';
import { ConflictError, InvalidRequestError, PoolExhaustedError } from '../domain/errors.ts';
import { newId } from '../domain/ids.ts';
import { parsePhone } from '../domain/phone.ts';
import type { Participant, ParticipantRequest, Session } from '../domain/session.ts';
import { NumberRepository } from '../store/numbers.ts';
import type { Db } from '../store/schema.ts';
import { SessionRepository } from '../store/sessions.ts';
import { endSession } from './session-end.ts';

/**
 * Chooses proxy numbers for new participants of one session, inside its transaction. It first
 * expires the people's stale sessions (so a session past its expiry holds nothing even before the
 * sweeper runs), then walks the search plan of the domain, taking the first number that fits.
 * The caller writes the participants it returns.
 */
export class Allocator {
  private readonly sessions: SessionRepository;
  private readonly numbers: NumberRepository;

  constructor(
    private readonly trx: Db,
    private readonly tenantId: string,
    private readonly session: Session,
    private readonly now: number,
    private readonly cooldownSeconds: number,
    private readonly preference: ProxyPreference,
  ) {
    this.sessions = new SessionRepository(trx);
    this.numbers = new NumberRepository(trx);
  }

  async allocate(requests: readonly ParticipantRequest[]): Promise<Participant[]> {
    const cooling = await this.histories(requests.map((r) => r.phone.e164));
    const held = new Set(this.session.participants.map((p) => p.proxyNumberId));
    const sharedPick =
      this.session.mode !== 'shared'
        ? undefined
        : this.session.participants[0]
          ? await this.joinShared(this.session.participants[0], requests)
          : await this.pick(requests, cooling, held, 'participants');
    const participants: Participant[] = [];
    for (const [i, request] of requests.entries()) {
      const proxy = sharedPick ?? (await this.pick([request], cooling, held, `participants/${i}`));
      const participant: Participant = {
        id: newId('par', this.now),
        sessionId: this.session.id,
        number: request.phone.e164,
        label: request.label,
        proxyNumberId: proxy.id,
        proxyNumber: proxy.number,
        revealNumber: request.revealNumber,
        canInitiate: request.canInitiate,
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
  private async joinShared(
    member: Participant,
    requests: readonly ParticipantRequest[],
  ): Promise<{ id: string; number: string }> {
    const country = parsePhone(member.proxyNumber, 'proxyNumber').country;
    for (const request of requests) {
      if (request.phone.country !== country) {
        throw new InvalidRequestError(
          `this shared session's proxy is local to ${country}; the newcomer is not`,
          'number',
        );
      }
      if (await this.sessions.holds(request.phone.e164, member.proxyNumber)) {
        throw new ConflictError('the newcomer already holds this shared session’s proxy in another session');
      }
    }
    return { id: member.proxyNumberId, number: member.proxyNumber };
  }

  /** Numbers given back after this moment are within the reuse cooldown. */
  private get coolingSince(): number {
    return this.now - this.cooldownSeconds * 1000;
  }

  /**
   * Expires the people's stale sessions (so that they hold nothing, even before the sweeper runs)
   * and says which of the people gave a number back within the reuse cooldown, those stale
   * sessions' numbers included: they are given back now.
   */
  private async histories(people: string[]): Promise<Set<string>> {
    const { stale, gaveBack } = await this.sessions.histories(people, this.now, this.coolingSince);
    for (const sessionId of new Set(stale.map((h) => h.sessionId))) {
      const session = await this.sessions.get(this.tenantId, sessionId);
      // A stale session of another tenant is left to the sweeper; its numbers are not in this pool.
      if (session) await endSession(this.trx, session, 'expired', this.now);
    }
    return new Set([...gaveBack, ...stale.map((h) => h.number)]);
  }

  /** The best number for these people (one, or both of a shared session), counted as taken. */
  private async pick(
    requests: readonly ParticipantRequest[],
    cooling: ReadonlySet<string>,
    heldBySession: ReadonlySet<string>,
    field: string,
  ): Promise<{ id: string; number: string }> {
    const plan = proxySearchPlan({
      tenantId: this.tenantId,
      people: requests.map((r) => r.phone),
      geoMatch: this.session.geoMatch,
      channels: this.session.channels,
      preference: this.preference,
      coolingSince: requests.some((r) => cooling.has(r.phone.e164)) ? this.coolingSince : undefined,
    });
    for (const search of plan) {
      const found = await this.numbers.takeProxy(search, heldBySession, this.now);
      if (found) return found;
    }
    const where = requests[0]?.phone.country ?? '';
    throw new PoolExhaustedError(`no proxy number in ${where} is free for ${field}`);
  }
}
