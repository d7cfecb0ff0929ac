import { InvalidRequestError } from '../../domain/errors.ts';
import { SCOPES, type Scope } from '../../domain/keys.ts';
import { DEFAULT_TENANT } from '../../domain/tenants.ts';
import { sealAll } from '../../store/sealing.ts';
import { vaultOf } from '../../store/vault.ts';
import { keyView } from '../../views.ts';
import { cliConfig, withVeil } from '../core.ts';
import { maxLength } from '../input.ts';
import { isoTime, type Output, table } from '../output.ts';

export interface CreateOptions {
  scope: string[];
  tenant?: string;
}

export interface TenantOption {
  tenant?: string;
}

/**
 * `veil keys create`: a new API key, its secret printed this once. The operator at the machine
 * acts for the installation, so it may make a key of any tenant (`--tenant`); the audit log
 * records the CLI as the actor (no key).
 */
export async function create(name: string, options: CreateOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const keyName = maxLength(name, 'name', 64) as string;
  const scopes = scopesOption(options.scope);
  const { key, secret } = await withVeil(config, (veil) =>
    veil.keys.create(options.tenant ?? DEFAULT_TENANT, keyName, scopes),
  );
  out.result({ ...keyView(key), key: secret }, () => [
    `created key ${key.id} (${key.scopes.join(', ')}) for tenant ${key.tenantId}`,
    `secret, shown this once: ${secret}`,
  ]);
}

/** `veil keys list`: a tenant's keys, revoked ones included; never a secret. */
export async function list(options: TenantOption, out: Output): Promise<void> {
  const config = cliConfig();
  const keys = await withVeil(config, (veil) => veil.keys.list(options.tenant ?? DEFAULT_TENANT));
  out.result({ data: keys.map(keyView), nextCursor: null }, () => {
    if (keys.length === 0) return 'no key';
    return table([
      ['ID', 'NAME', 'SCOPES', 'CREATED AT', 'REVOKED AT'],
      ...keys.map((k) => [
        k.id,
        k.name,
        k.scopes.join(','),
        isoTime(k.createdAt),
        k.revokedAt === null ? '-' : isoTime(k.revokedAt),
      ]),
    ]);
  });
}

/** `veil keys revoke`: the key answers 401 from the next request on, on every instance. */
export async function revoke(id: string, out: Output): Promise<void> {
  const config = cliConfig();
  const key = await withVeil(config, (veil) => veil.keys.revoke('any', id));
  out.result(keyView(key), () => `revoked key ${key.id} (${key.name})`);
}

/** `veil keys rotate`: a new secret for the key, printed this once; the old one stops working. */
export async function rotate(id: string, out: Output): Promise<void> {
  const config = cliConfig();
  const { key, secret } = await withVeil(config, (veil) => veil.keys.rotate('any', id));
  out.result({ ...keyView(key), key: secret }, () => [
    `rotated key ${key.id} (${key.name}): the old secret no longer works`,
    `new secret, shown this once: ${secret}`,
  ]);
}

function scopesOption(list: string[]): Scope[] {
  if (list.length === 0) throw new InvalidRequestError(`--scope is required: ${SCOPES.join(', ')}`, 'scope');
  for (const s of list) {
    if (!(SCOPES as readonly string[]).includes(s)) {
      throw new InvalidRequestError(`--scope must be one of ${SCOPES.join(', ')}`, 'scope');
    }
  }
  return [...new Set(list)] as Scope[];
}

/**
 * `veil keys rotate-data`: every sealed value not under the current data key (and anything an
 * older Veil left in clear) sealed again under it, a batch at a time, with a line of progress per
 * batch on stderr with --json (stdout otherwise). Safe beside running servers that know both keys.
 */
export async function rotateData(options: { json?: boolean }, out: Output): Promise<void> {
  const config = cliConfig();
  const progress = options.json ? process.stderr : process.stdout;
  const { keyId, done } = await withVeil(config, async (veil) => {
    const done = await sealAll(veil.store, 'rotate', (table, n) =>
      progress.write(`${table}: ${n} sealed again\n`),
    );
    return { keyId: vaultOf(veil.store.db).currentKeyId, done };
  });
  out.result(
    { keyId, ...done },
    () =>
      `every stored number is sealed under data key ${keyId} (${Object.entries(done)
        .map(([table, n]) => `${table} ${n}`)
        .join(', ')} changed)`,
  );
}
