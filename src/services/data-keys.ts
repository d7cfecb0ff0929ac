import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, type DataKeySource } from '../config.ts';
import { checkDataKeys, type DataKeys, generateDataKeys } from '../store/vault.ts';

/** A key file as written: base64 keys, the data key that encrypts first. */
interface KeyFile {
  indexKey: string;
  dataKeys: { id: string; key: string }[];
}

/**
 * The keys that seal real numbers, from where the config says. A development key file is generated
 * when there is none (atomically: instances starting together end up with the same keys), with a
 * warning, since keys kept beside the data protect only copies of the data taken without them.
 */
export function loadDataKeys(source: DataKeySource, logger?: Pick<Logger, 'warn'>): DataKeys {
  if (source.from === 'environment') return source.keys;
  if (source.from === 'memory') return generateDataKeys();
  const { file } = source;
  if (source.generate && writeNew(file, generateDataKeys())) {
    logger?.warn(
      { file },
      'generated the keys that encrypt real numbers into a file beside the database (development): keep a copy, and set VEIL_DATA_KEYS and VEIL_INDEX_KEY, or VEIL_KEY_FILE, in production',
    );
  }
  return readKeyFile(file);
}

/** The keys a key file holds, checked; a ConfigError naming VEIL_KEY_FILE when it cannot be used. */
export function readKeyFile(file: string): DataKeys {
  let parsed: KeyFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as KeyFile;
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'is not JSON';
    throw new ConfigError('VEIL_KEY_FILE', `${file} ${why}`);
  }
  try {
    if (typeof parsed?.indexKey !== 'string' || !Array.isArray(parsed.dataKeys))
      throw new Error('must hold {"indexKey": base64, "dataKeys": [{"id", "key": base64}, ...]}');
    const keys: DataKeys = {
      indexKey: Buffer.from(parsed.indexKey, 'base64'),
      dataKeys: parsed.dataKeys.map((k) => ({ id: String(k.id), key: Buffer.from(String(k.key), 'base64') })),
    };
    checkDataKeys(keys);
    return keys;
  } catch (error) {
    throw new ConfigError('VEIL_KEY_FILE', `${file}: ${(error as Error).message}`);
  }
}

/** The text of a key file holding `keys`. */
export function keyFileText(keys: DataKeys): string {
  const file: KeyFile = {
    indexKey: Buffer.from(keys.indexKey).toString('base64'),
    dataKeys: keys.dataKeys.map(({ id, key }) => ({ id, key: Buffer.from(key).toString('base64') })),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

/** Writes `keys` to `file` unless it exists, readable by its owner only: true when written. */
function writeNew(file: string, keys: DataKeys): boolean {
  mkdirSync(dirname(file), { recursive: true });
  // Written whole under another name, then linked: a reader never sees half a file, and of two
  // processes generating at once one links first and the other keeps the first one's keys.
  const draft = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(draft, keyFileText(keys), { mode: 0o600 });
  try {
    linkSync(draft, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    unlinkSync(draft);
  }
}
