/**
 * A carrier's health as the operator reads it (`GET /v1/providers`): `down` while its calls fail
 * (its circuit is open) or another instance found it so, `degraded` while it is being tried again
 * or some of its recent calls failed, `healthy` otherwise.
 */
export type ProviderHealth = 'healthy' | 'degraded' | 'down';

/** What the database says of a carrier, for every instance: the operator's switch and its health. */
export interface ProviderFlags {
  /** The operator's one-click downgrade: false while switched off. */
  enabled: boolean;
  /** An instance found its calls failing and has not seen it recover. */
  down: boolean;
}

/** A carrier's circuit breaker on one instance: closed (in use), open (down), half-open (being tried). */
export type Circuit = 'closed' | 'open' | 'half-open';

export const FLAGS_UP: ProviderFlags = { enabled: true, down: false };

/** Share of recent calls failed above which a carrier whose circuit is closed reads `degraded`. */
export const DEGRADED_ERROR_RATE = 0.2;

/** The health shown for a carrier, from its circuit here, its recent error rate and the shared flag. */
export function healthOf(circuit: Circuit, errorRate: number, down: boolean): ProviderHealth {
  if (circuit === 'open' || down) return 'down';
  if (circuit === 'half-open' || errorRate > DEGRADED_ERROR_RATE) return 'degraded';
  return 'healthy';
}

/**
 * The carriers new sessions may use: the enabled ones that are switched on and not down. A session
 * then gets numbers of these only, or 503 pool_exhausted; open sessions keep theirs.
 */
export function usableCarriers(
  carriers: readonly string[],
  flags: ReadonlyMap<string, ProviderFlags>,
): string[] {
  return carriers.filter((name) => {
    const f = flags.get(name) ?? FLAGS_UP;
    return f.enabled && !f.down;
  });
}
