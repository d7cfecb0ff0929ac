import { generateWebhookSecret } from '../domain/ids.ts';
import type { Db } from '../store/schema.ts';
import { ensureSetting } from '../store/settings.ts';

/** The setting that holds the secret the app's webhooks (ask, intercept) are signed with. */
const HOOK_SECRET_SETTING = 'app_webhook_secret';

/**
 * The secret that signs the requests to the app's webhooks, kept in the database (a new one stored
 * first if there is none), so that every instance signs with the same and `veil hooks secret`
 * shows it.
 */
export function ensureHookSecret(db: Db): Promise<string> {
  return ensureSetting(db, HOOK_SECRET_SETTING, generateWebhookSecret());
}
