import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import type { DialectAdapter } from 'kysely';
import type { Db } from './schema.ts';

/**
 * The keys that protect real numbers at rest (DESIGN §4): one to look numbers up through a blind
 * index (HMAC-SHA256), and data keys to encrypt them (AES-256-GCM). The first data key encrypts;
 * the others, kept for rotation, only decrypt what they once encrypted.
 */
export interface DataKeys {
  indexKey: Uint8Array;
  dataKeys: readonly { id: string; key: Uint8Array }[];
}

/** What a data key's id may be: it is written before each value it encrypts. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,16}$/;
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** A sealed value: `<key id>:<base64url of iv, ciphertext and tag>`. A number or JSON never matches. */
const SEALED = /^([A-Za-z0-9_-]{1,16}):([A-Za-z0-9_-]+)$/;
/** What starts a keyed fingerprint; an older Veil's plain hash (base64url) never has a colon. */
export const KEYED_FINGERPRINT = 'h:';
/** Memo sizes: past them a memo starts over (a route's numbers are sealed or looked up again). */
const MEMO_ENTRIES = 50_000;
/** The longest text the memos keep: an E.164 number (16 characters) with room to spare. */
const NUMBER_CHARS = 32;

/** A value that does not open: tampered, or sealed under a key this instance does not have. */
export class SealedValueError extends Error {
  readonly code = 'sealed_value_unreadable';
}

/** Checks a key set: sizes, ids, no id twice. Throws an Error naming what is wrong, never a key. */
export function checkDataKeys(keys: DataKeys): void {
  if (keys.indexKey.length !== KEY_BYTES) throw new Error(`the index key must be ${KEY_BYTES} bytes`);
  if (keys.dataKeys.length === 0) throw new Error('at least one data key is needed');
  const ids = new Set<string>();
  for (const { id, key } of keys.dataKeys) {
    if (!KEY_ID_PATTERN.test(id)) throw new Error(`data key id "${id}" must be 1-16 of A-Z a-z 0-9 _ -`);
    if (ids.has(id)) throw new Error(`data key id "${id}" is given twice`);
    if (key.length !== KEY_BYTES) throw new Error(`data key "${id}" must be ${KEY_BYTES} bytes`);
    ids.add(id);
  }
}

/** A new key set: a random index key and one random data key named `id`. */
export function generateDataKeys(id = 'k1'): DataKeys {
  return { indexKey: randomBytes(KEY_BYTES), dataKeys: [{ id, key: randomBytes(KEY_BYTES) }] };
}

/**
 * Seals real numbers (and what carries them, such as an event's payload) for the database and
 * opens them again, and gives each number its blind index. The store calls it at its edge, so
 * that the rest of Veil sees numbers and the tables see only indexes and ciphertext.
 *
 * A number's index and its sealed form are remembered, so that a route computes them at most
 * once: reusing a ciphertext reveals no more than the blind index already does (that two rows hold
 * the same number), and no nonce is ever used twice.
 */
export class NumberVault {
  readonly currentKeyId: string;
  /** What starts every value sealed under the current key. */
  private readonly currentPrefix: string;
  private readonly indexKey: Buffer;
  private readonly keys: Map<string, Buffer>;
  private readonly current: Buffer;
  private readonly indexes = new Map<string, string>();
  private readonly sealedNumbers = new Map<string, string>();
  private readonly opened = new Map<string, string>();
  // Nonces drawn in bulk: one randomBytes call per value costs more than the encryption.
  private nonces = Buffer.alloc(0);
  private nonceOffset = 0;

  constructor(keys: DataKeys) {
    checkDataKeys(keys);
    this.indexKey = Buffer.from(keys.indexKey);
    this.keys = new Map(keys.dataKeys.map(({ id, key }) => [id, Buffer.from(key)]));
    const [first] = keys.dataKeys as [{ id: string; key: Uint8Array }];
    this.currentKeyId = first.id;
    this.currentPrefix = `${first.id}:`;
    this.current = this.keys.get(first.id) as Buffer;
  }

  /** The blind index of a number: HMAC-SHA256 under the index key, base64url. */
  index(number: string): string {
    let index = this.indexes.get(number);
    if (index === undefined) {
      index = createHmac('sha256', this.indexKey).update(number).digest('base64url');
      remember(this.indexes, number, index);
    }
    return index;
  }

  /**
   * A request's fingerprint as stored: keyed like the blind index (and apart from it), since a
   * plain hash of a request that names two people could be searched for their numbers.
   */
  fingerprint(fingerprint: string): string {
    return `${KEYED_FINGERPRINT}${createHmac('sha256', this.indexKey).update(`fingerprint:${fingerprint}`).digest('base64url')}`;
  }

  /** A number sealed under the current key (the same ciphertext for the same number, see above). */
  sealNumber(number: string): string {
    let sealed = this.sealedNumbers.get(number);
    if (sealed === undefined) {
      sealed = this.seal(number);
      remember(this.sealedNumbers, number, sealed);
    }
    return sealed;
  }

  /** Any text sealed under the current key, with a nonce of its own. */
  seal(text: string): string {
    const nonce = this.nonce();
    const cipher = createCipheriv('aes-256-gcm', this.current, nonce);
    const body = Buffer.concat([nonce, cipher.update(text, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${this.currentKeyId}:${body.toString('base64url')}`;
  }

  /** The text of a sealed value. Throws SealedValueError when it does not open. */
  open(sealed: string): string {
    const known = this.opened.get(sealed);
    if (known !== undefined) return known;
    const [, keyId = '', encoded = ''] = SEALED.exec(sealed) ?? [];
    const key = this.keys.get(keyId);
    if (!key) throw new SealedValueError(keyId ? `no data key "${keyId}"` : 'not a sealed value');
    const body = Buffer.from(encoded, 'base64url');
    if (body.length < IV_BYTES + TAG_BYTES) throw new SealedValueError('sealed value too short');
    let text: string;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(0, IV_BYTES));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      text = decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES), undefined, 'utf8');
      text += decipher.final('utf8');
    } catch {
      throw new SealedValueError(`sealed value does not open under data key "${keyId}"`);
    }
    // Numbers only: they are read again and again (each route); an event's payload is read once
    // or twice and may be kilobytes, which the memo's 50,000 entries would hold for nothing.
    if (text.length <= NUMBER_CHARS) {
      remember(this.opened, sealed, text);
      // A number read under the current key is sealed already: writing it again reuses that.
      if (keyId === this.currentKeyId) remember(this.sealedNumbers, text, sealed);
    }
    return text;
  }

  /**
   * A row's sealed number. Only a row from before migration 0015 has none, and the store seals
   * those when it opens (store/sealing.ts), so one here is a bug.
   */
  openNumber(sealed: string | null): string {
    if (sealed === null) throw new SealedValueError('a number not yet sealed was read');
    return this.open(sealed);
  }

  /**
   * `number`, read as `sealed` from a row found by its blind index: remembered as its sealed form
   * (when under the current key) without opening it, since the index already says whose it is.
   */
  knownAs(number: string, sealed: string | null): string {
    if (sealed?.startsWith(this.currentPrefix) && this.sealedNumbers.get(number) !== sealed)
      remember(this.sealedNumbers, number, sealed);
    return number;
  }

  /** `open` for a value that may be absent. */
  openOrNull(sealed: string | null): string | null {
    return sealed === null ? null : this.open(sealed);
  }

  /** `sealNumber` for a value that may be absent. */
  sealNumberOrNull(number: string | null): string | null {
    return number === null ? null : this.sealNumber(number);
  }

  /** Whether a data key of this id is configured. */
  hasKey(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  /** The id of the key a value is sealed under, or undefined for a value that is not sealed (clear text). */
  static keyIdOf(value: string): string | undefined {
    return SEALED.exec(value)?.[1];
  }

  private nonce(): Buffer {
    if (this.nonceOffset + IV_BYTES > this.nonces.length) {
      this.nonces = randomBytes(IV_BYTES * 512);
      this.nonceOffset = 0;
    }
    this.nonceOffset += IV_BYTES;
    return this.nonces.subarray(this.nonceOffset - IV_BYTES, this.nonceOffset);
  }
}

function remember(memo: Map<string, string>, key: string, value: string): void {
  if (memo.size >= MEMO_ENTRIES) memo.clear();
  memo.set(key, value);
}

// The vault of each database handle, found from the handle's adapter, which its transactions share.
const vaults = new WeakMap<DialectAdapter, NumberVault>();

/** Gives a database handle (and every transaction on it) its vault. */
export function attachVault(db: Db, vault: NumberVault): void {
  vaults.set(db.getExecutor().adapter, vault);
}

/** The vault of a database handle or transaction. Throws when the store was opened without keys. */
export function vaultOf(db: Db): NumberVault {
  const vault = vaults.get(db.getExecutor().adapter);
  if (!vault)
    throw new Error('this store was opened without data keys: real numbers cannot be read or written');
  return vault;
}
