import { maskNumber } from './phone.ts';

/** Every admin action the audit log records. */
export const AUDIT_ACTIONS = [
  'tenant.created',
  'key.created',
  'key.rotated',
  'key.revoked',
  'number.added',
  'number.changed',
  'number.retired',
  'provider.enabled',
  'provider.disabled',
  'blocklist.added',
  'blocklist.removed',
  'webhook_endpoint.created',
  'webhook_endpoint.deleted',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Who acts: the API key of the request, or null for the `veil` CLI (the operator at the machine). */
export type ActingKey = string | null;

/** One admin action: who did what to which object of which tenant, and when. */
export interface AuditEntry {
  id: string;
  /** The tenant whose resource the action changed (a tenant's creation: the installation's). */
  tenantId: string;
  keyId: ActingKey;
  action: AuditAction;
  /** The object's id; a blocked number's mask, since a real number is never kept in clear here. */
  targetId: string;
  /** What changed, numbers masked; null when the action says it all. */
  detail: Record<string, unknown> | null;
  createdAt: number;
}

/** The audit target of a blocklist entry: its number, masked (`+1415*****02`). */
export function blockedTarget(number: string): string {
  return maskNumber(number);
}
