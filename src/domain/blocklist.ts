/** A number a tenant never wants connected (abuse, fraud): not as a caller, not as the one called. */
export interface BlocklistEntry {
  tenantId: string;
  /** E.164. */
  number: string;
  /** Why it was blocked, for the operator; null when not given. */
  reason: string | null;
  createdAt: number;
}
