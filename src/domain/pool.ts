import { InvalidRequestError } from './errors.ts';
import type { Channel } from './session.ts';

export const NUMBER_STATUSES = ['active', 'draining', 'retired'] as const;
export type NumberStatus = (typeof NUMBER_STATUSES)[number];

/** A proxy number in the pool. */
export interface PoolNumber {
  id: string;
  tenantId: string;
  number: string;
  provider: string;
  country: string;
  region: string;
  capabilities: Channel[];
  status: NumberStatus;
  tags: Record<string, string>;
  maxSessions: number | null;
  /** Open sessions holding the number now. */
  load: number;
  /** The open `dedicated` session that owns the number alone, if any. */
  dedicatedTo: string | null;
  createdAt: number;
  updatedAt: number;
}

/**
 * The status a number moves to when it is taken out of the pool: retired at once when no open
 * session holds it, else draining (no new sessions; open ones end normally, then it retires).
 */
export function retirementStatus(load: number): NumberStatus {
  return load === 0 ? 'retired' : 'draining';
}

/** The status change an operator may ask for with PATCH: a retired number never comes back. */
export function assertStatusChange(from: NumberStatus, to: NumberStatus): void {
  if (from === 'retired' && to !== 'retired') {
    throw new InvalidRequestError('a retired number cannot return to the pool; add it again', 'status');
  }
}
