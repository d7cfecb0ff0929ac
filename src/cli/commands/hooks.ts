import { ensureHookSecret } from '../../services/hook-secret.ts';
import { cliConfig, withVeil } from '../core.ts';
import type { Output } from '../output.ts';

/**
 * `veil hooks secret`: the secret the app's webhooks (ask, intercept) are signed with, for the app
 * to verify them (Standard Webhooks). Made and kept in the database the first time it is needed,
 * so it can be set up in the app before the server first starts.
 */
export async function secret(out: Output): Promise<void> {
  const value = await withVeil(cliConfig(), (veil) => ensureHookSecret(veil.store.db));
  out.result({ secret: value }, () => value);
}
