import { type ApiKey, allows } from './keys.ts';

/** The tenant of a single-tenant installation: the bootstrap key's, the CLI's and the demo pool's. */
export const DEFAULT_TENANT = 'default';

/** A customer of the installation: its own pool, sessions, keys, blocklist, endpoints and events. */
export interface Tenant {
  id: string;
  name: string;
  createdAt: number;
}

/**
 * Whether a key speaks for the installation rather than for one tenant: an admin key of the
 * installation's own tenant (the bootstrap VEIL_API_KEY is one). Only such a key manages tenants,
 * the carriers (which every tenant shares) and other tenants' keys.
 */
export function isInstallationAdmin(key: Pick<ApiKey, 'tenantId' | 'scopes'>): boolean {
  return key.tenantId === DEFAULT_TENANT && allows(key.scopes, 'admin');
}
