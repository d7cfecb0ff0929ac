import type { Channel } from '../domain/session.ts';

/** The most numbers one purchase may ask for. */
export const MAX_PURCHASE = 100;

/** A number a carrier offers for sale, E.164, with what it carries. */
export interface AvailableNumber {
  number: string;
  capabilities: Channel[];
}

/** A number the account owns at the carrier; `ref` is the carrier's id for it (Twilio's PN... sid). */
export interface OwnedNumber {
  number: string;
  ref: string;
  capabilities: Channel[];
}

/** What to look for: `count` numbers of a country, in an area code when given. */
export interface NumberSearch {
  country: string;
  areaCode?: string;
  count: number;
  /**
   * Which of `numbers` Veil already holds or is buying: a carrier that makes numbers up (the
   * simulator) must not offer them; a real one never offers a number its account owns anyway.
   */
  taken(numbers: readonly string[]): Promise<ReadonlySet<string>>;
}

/**
 * A carrier's numbers API, for buying numbers into the pool and giving them back. Every call either
 * answers or throws a ProcurementError within the carrier client's own time bound.
 */
export interface NumberProvider {
  /** Numbers on sale that fit the search, at most `count`; none is an empty list, not an error. */
  search(query: NumberSearch): Promise<AvailableNumber[]>;
  buy(number: string): Promise<OwnedNumber>;
  /**
   * The number when the account owns it, else undefined: how a purchase whose answer was lost (a
   * crash, a timeout) is settled without buying it twice.
   */
  owned(number: string): Promise<OwnedNumber | undefined>;
  /** Gives the number back; a number the account no longer owns counts as given back. */
  release(number: OwnedNumber): Promise<void>;
}

/**
 * The carrier refused or did not answer a numbers API call. Its message says what went wrong for the
 * operator and holds no number in clear (callers mask it again before logging or answering).
 */
export class ProcurementError extends Error {
  override readonly name = 'ProcurementError';

  constructor(
    message: string,
    /** The carrier answered no: a purchase that failed so bought nothing (unknown when false). */
    readonly nothingBought = false,
  ) {
    super(message);
  }
}
