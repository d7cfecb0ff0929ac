/**
 * Remote binding (Alibaba Cloud PNS `BindAxb` style): the carrier, not Veil, connects the calls of
 * a session, so the pair (A, B) must be bound to their proxy X at the carrier before anything
 * routes, and unbound when the session ends. These are the rules of that binding's life; the
 * store keeps the state on both participant rows of the session, the worker moves it.
 */

/**
 * - `not_bound`: nothing asked of the carrier (the state a binding starts from; Veil writes new
 *   sessions straight into `binding`, since the worker picks up work in `binding`);
 * - `binding`: the carrier is to be asked (or is being asked) to bind; retried with backoff;
 * - `bound`: the carrier confirmed, with its id for the binding (SubsId): calls connect;
 * - `unbinding`: the session ended; the carrier is to be asked to undo the binding;
 * - `unbound`: nothing left at the carrier;
 * - `failed`: the carrier refused or failed every try (`binding.failed` told the app).
 */
export const BINDING_STATES = ['not_bound', 'binding', 'bound', 'unbinding', 'unbound', 'failed'] as const;
export type BindingState = (typeof BINDING_STATES)[number];

/** Carriers that keep the binding on their side; their numbers only serve `shared` (AXB) sessions. */
export const REMOTE_BINDING_PROVIDERS: readonly string[] = ['aliyun'];

export function bindsRemotely(provider: string | undefined): boolean {
  return provider !== undefined && REMOTE_BINDING_PROVIDERS.includes(provider);
}

/**
 * Whether a new session may be bound at a remote-binding carrier: an AXB binding is one proxy for
 * both people (`shared`), lives to a fixed expiry, and the carrier connects every call itself, so
 * Veil's per-call policies (who may call, whose number shows, a call's longest length) cannot
 * apply there; a session asking for them goes to another carrier.
 */
export function fitsRemoteBinding(
  session: { mode: string; ttlMode: string; maxCallSeconds: number | null },
  people: readonly { canInitiate: boolean; revealNumber: boolean }[],
): boolean {
  return (
    session.mode === 'shared' &&
    session.ttlMode === 'fixed' &&
    session.maxCallSeconds === null &&
    people.every((p) => p.canInitiate && !p.revealNumber)
  );
}

/** The moves a binding may make; anything else is refused by the store's guarded updates. */
const TRANSITIONS: Readonly<Record<BindingState, readonly BindingState[]>> = {
  not_bound: ['binding', 'unbound'],
  binding: ['bound', 'failed', 'unbound'],
  bound: ['unbinding'],
  unbinding: ['unbound', 'failed'],
  unbound: [],
  failed: ['unbound'],
};

export function canMove(from: BindingState, to: BindingState): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * Where a binding goes when its session ends: a bound one is undone at the carrier; one never
 * confirmed has nothing there to undo (a bind still in flight finds its version changed and undoes
 * what it made itself), so it is over at once.
 */
export function stateAtEnd(state: BindingState): BindingState {
  if (state === 'bound') return 'unbinding';
  if (state === 'unbinding' || state === 'unbound') return state;
  return 'unbound';
}

/** The states the worker acts on: each asks one call of the carrier. */
export const PENDING_STATES = ['binding', 'unbinding'] as const satisfies readonly BindingState[];
export type PendingState = (typeof PENDING_STATES)[number];

/** Where a pending binding goes when the carrier says yes. */
export function stateOnSuccess(state: PendingState): BindingState {
  return state === 'binding' ? 'bound' : 'unbound';
}

/**
 * Whether a participation may route now: an ordinary carrier's (no binding) always, a remote
 * binding's only once the carrier confirmed it.
 */
export function routes(state: BindingState | null): boolean {
  return state === null || state === 'bound';
}

export interface Backoff {
  /** The first retry's ceiling. */
  baseMs: number;
  /** No retry waits longer than this. */
  capMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 1_000, capMs: 300_000 };

/**
 * How long to wait before try `attempt + 1` after `attempt` failed tries (counting from 0):
 * "full jitter", `random() * min(cap, base * 2^attempt)`, so that bindings that failed together
 * (the carrier was down) do not come back together. `random` returns [0, 1).
 */
export function backoffMs(attempt: number, backoff: Backoff = DEFAULT_BACKOFF, random = Math.random): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempt, 52));
  return Math.floor(random() * ceiling);
}

/** Longest error kept on a binding (the carrier's code, or what went wrong on the way). */
export const MAX_BINDING_ERROR = 120;
