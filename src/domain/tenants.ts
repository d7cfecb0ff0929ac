/** The tenant of a single-tenant installation: the bootstrap key's, the CLI's and the demo pool's. */
export const DEFAULT_TENANT = 'default';
