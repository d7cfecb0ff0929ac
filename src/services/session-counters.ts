import { Counter } from 'prom-client';
import { SESSION_MODES, type SessionMode } from '../domain/session.ts';

const ALLOCATION_OPERATIONS = ['create', 'add_participant', 'replace_participant'] as const;

/** What asked the allocator for proxy numbers. */
export type AllocationOperation = (typeof ALLOCATION_OPERATIONS)[number];

/**
 * What this instance's session service did, counted as it happens: sessions opened, proxy numbers
 * given to participants, and requests refused because no number fitted (`pool_exhausted`). The
 * counters belong to the core, which the HTTP server, the CLI and the order consumers share; each
 * app's registry shows them (services/metrics.ts). A session's writes may run on another thread:
 * these are counted on this one, from the answers.
 */
export class SessionCounters {
  readonly created = new Counter({
    name: 'veil_sessions_created_total',
    help: 'Sessions opened by this instance, by mode (an idempotent retry that finds its session is not counted)',
    labelNames: ['mode'],
    registers: [],
  });
  readonly allocations = new Counter({
    name: 'veil_allocations_total',
    help: 'Proxy numbers given to participants by this instance: by a create, a participant added, or one replaced',
    labelNames: ['operation'],
    registers: [],
  });
  readonly poolExhausted = new Counter({
    name: 'veil_pool_exhausted_total',
    help: 'Requests this instance refused with pool_exhausted (503): no proxy number fitted a participant',
    labelNames: ['operation'],
    registers: [],
  });

  constructor() {
    // Every series from 0, so that the first session or refusal shows in rate() and increase().
    for (const mode of SESSION_MODES) this.created.inc({ mode }, 0);
    for (const operation of ALLOCATION_OPERATIONS) {
      this.allocations.inc({ operation }, 0);
      this.poolExhausted.inc({ operation }, 0);
    }
  }

  /** The counters, for a registry to show. */
  get all(): Counter[] {
    return [this.created, this.allocations, this.poolExhausted];
  }

  sessionCreated(mode: SessionMode, participants: number): void {
    this.created.inc({ mode });
    this.allocations.inc({ operation: 'create' }, participants);
  }

  allocated(operation: AllocationOperation): void {
    this.allocations.inc({ operation });
  }

  exhausted(operation: AllocationOperation): void {
    this.poolExhausted.inc({ operation });
  }
}
