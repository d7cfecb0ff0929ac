/**
 * A remote-binding carrier (Alibaba Cloud PNS style): it connects the calls itself once told which
 * two people talk through which proxy. Every call either answers or throws a BindError within the
 * client's own time bound. Another such carrier is one more folder implementing this.
 */
export interface Binder {
  readonly name: string;
  /** Binds the two people (E.164) to their proxy until `expiresAt`; the carrier's id for the binding. */
  bind(binding: BindRequest): Promise<{ ref: string }>;
  /** Undoes a binding; one the carrier no longer has counts as undone. */
  unbind(ref: string, proxyNumber: string): Promise<void>;
}

export interface BindRequest {
  /** The session's two people, E.164: A and B. */
  people: readonly [string, string];
  /** Their one proxy X, E.164. */
  proxyNumber: string;
  /** When the binding ends at the carrier by itself (epoch ms): the session's expiry. */
  expiresAt: number;
  record: boolean;
}

/**
 * A carrier's refusal or failure: `reason` is what the carrier said (its error code) or what went
 * wrong on the way (`timeout`, `unreachable`, `status 503`), never a number.
 */
export class BindError extends Error {
  override readonly name = 'BindError';
}
