import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
} from 'cockatiel';
import type { ProviderHealthPolicy } from '../config.ts';
import { UnavailableError } from '../domain/errors.ts';
import type { Circuit } from '../domain/providers.ts';
import type { Binder } from '../providers/binder.ts';
import { type NumberProvider, ProcurementError } from '../providers/procurement.ts';

/** How many recent outcomes a carrier's error rate and latency are read from. */
const WINDOW = 100;

/** What an operator reads of a carrier's recent calls, on this instance. */
export interface CallStats {
  /** Calls in the window (at most WINDOW): API calls and webhooks handled. */
  calls: number;
  /** Share of them that failed, 0 with none. */
  errorRate: number;
  /** The median time of those that succeeded, in ms; null with none. */
  latencyMs: number | null;
}

/**
 * A failure that says the carrier is unwell: anything but its own clear answer that it did nothing
 * for this request (a 4xx on a purchase: no such number, a bad area code), which says it is up.
 */
export function isCarrierFault(error: unknown): boolean {
  return !(error instanceof ProcurementError && error.nothingBought);
}

class Tracker {
  readonly breaker: CircuitBreakerPolicy;
  private readonly outcomes: { ok: boolean; ms: number }[] = [];
  private next = 0;

  constructor(policy: ProviderHealthPolicy) {
    this.breaker = circuitBreaker(handleWhen(isCarrierFault), {
      halfOpenAfter: policy.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(policy.failures),
    });
  }

  record(ok: boolean, ms: number): void {
    this.outcomes[this.next] = { ok, ms };
    this.next = (this.next + 1) % WINDOW;
  }

  stats(): CallStats {
    const calls = this.outcomes.length;
    const times = this.outcomes
      .filter((o) => o.ok)
      .map((o) => o.ms)
      .sort((a, b) => a - b);
    return {
      calls,
      errorRate: calls === 0 ? 0 : (calls - times.length) / calls,
      latencyMs: times.length === 0 ? null : Math.round(times[Math.floor(times.length / 2)] ?? 0),
    };
  }
}

/**
 * Each carrier's health on this instance: a circuit breaker (cockatiel) over its API calls, opened
 * by `policy.failures` faults in a row and tried again (half-open) after `policy.halfOpenAfterMs`,
 * and the outcomes of its recent calls and webhooks. `onChange` hears a carrier go down (the circuit
 * opens) and come back (it closes again).
 */
export class CarrierHealth {
  private readonly trackers = new Map<string, Tracker>();

  constructor(
    names: readonly string[],
    policy: ProviderHealthPolicy,
    onChange: (name: string, down: boolean) => void,
  ) {
    for (const name of names) {
      const tracker = new Tracker(policy);
      tracker.breaker.onBreak(() => onChange(name, true));
      tracker.breaker.onReset(() => onChange(name, false));
      this.trackers.set(name, tracker);
    }
  }

  /**
   * Runs one API call of carrier `name` through its circuit: while the circuit is open it fails at
   * once, with `broken(message)` (503 unavailable by default), and the carrier is not called.
   */
  async run<T>(
    name: string,
    call: () => Promise<T>,
    broken: (message: string) => Error = (m) => new UnavailableError(m),
  ): Promise<T> {
    const tracker = this.trackers.get(name);
    if (!tracker) return call();
    const started = performance.now();
    try {
      const value = await tracker.breaker.execute(call);
      tracker.record(true, performance.now() - started);
      return value;
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        throw broken(`${name} is down (its recent calls failed); it is tried again shortly`);
      }
      tracker.record(!isCarrierFault(error), performance.now() - started);
      throw error;
    }
  }

  /** Counts a webhook of carrier `name` handled (ok) or failed, in its stats only. */
  observe(name: string, ok: boolean, ms: number): void {
    this.trackers.get(name)?.record(ok, ms);
  }

  /** Carrier `name`'s numbers API with every call through its circuit. */
  guard(name: string, numbers: NumberProvider): NumberProvider {
    return {
      search: (query) => this.run(name, () => numbers.search(query)),
      buy: (number) => this.run(name, () => numbers.buy(number)),
      owned: (number) => this.run(name, () => numbers.owned(number)),
      release: (number) => this.run(name, () => numbers.release(number)),
    };
  }

  /** Remote-binding carrier `name` with its binds and unbinds through its circuit. */
  guardBinder(binder: Binder): Binder {
    return {
      name: binder.name,
      bind: (binding) => this.run(binder.name, () => binder.bind(binding)),
      unbind: (ref, proxyNumber) => this.run(binder.name, () => binder.unbind(ref, proxyNumber)),
    };
  }

  circuit(name: string): Circuit {
    const state = this.trackers.get(name)?.breaker.state;
    if (state === CircuitState.Open || state === CircuitState.Isolated) return 'open';
    if (state === CircuitState.HalfOpen) return 'half-open';
    return 'closed';
  }

  stats(name: string): CallStats {
    return this.trackers.get(name)?.stats() ?? { calls: 0, errorRate: 0, latencyMs: null };
  }
}
