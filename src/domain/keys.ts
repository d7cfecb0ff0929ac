import { createHash } from 'node:crypto';

export const SCOPES = ['admin', 'sessions', 'route', 'read'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  id: string;
  tenantId: string;
  name: string;
  scopes: Scope[];
  createdAt: number;
  revokedAt: number | null;
}

/** Keys are stored as SHA-256 hashes: they are long random strings, so no slow hash is needed. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/**
 * What a scope lets a key do. `admin` does everything; `sessions` manages sessions, routes and
 * reads; `route` only asks routing decisions (the SIP edge's key reads no session, so it cannot
 * list real numbers); `read` reads.
 */
export function allows(scopes: readonly Scope[], needed: Scope): boolean {
  if (scopes.includes('admin')) return true;
  if (needed === 'read') return scopes.includes('read') || scopes.includes('sessions');
  if (needed === 'route') return scopes.includes('route') || scopes.includes('sessions');
  return scopes.includes(needed);
}
