import { InvalidRequestError } from '../../domain/errors.ts';
import { CHANNELS } from '../../domain/session.ts';
import type { AvailableNumber, NumberProvider, NumberSearch, OwnedNumber } from '../procurement.ts';

/** The area a country's numbers are made up in when the search names none. */
const DEFAULT_AREA: Record<string, string> = { US: '415', CA: '416', GB: '20' };

/**
 * The simulator's numbers API: it makes numbers up in ranges reserved for fiction, so that none can
 * reach a real person: NANP 555-0100 to 555-0199 in any area code (US, CA), and Ofcom's drama ranges
 * (GB): 020 7946 0xxx, 01x1 496 0xxx and 011x 496 0xxx, 07700 900xxx. Offers come in number order,
 * skipping those Veil holds, so the same pool always gets the same numbers. Buying and releasing
 * change nothing anywhere: a bought number is owned for ever.
 */
export class SimNumbers implements NumberProvider {
  async search(query: NumberSearch): Promise<AvailableNumber[]> {
    const range = fictionalRange(query.country, query.areaCode ?? DEFAULT_AREA[query.country] ?? '');
    const offers: AvailableNumber[] = [];
    const batch = 100;
    for (let start = 0; start < range.size && offers.length < query.count; start += batch) {
      const numbers = Array.from({ length: Math.min(batch, range.size - start) }, (_, i) =>
        range.at(start + i),
      );
      const taken = await query.taken(numbers);
      for (const number of numbers) {
        if (offers.length === query.count) break;
        if (!taken.has(number)) offers.push({ number, capabilities: [...CHANNELS] });
      }
    }
    return offers;
  }

  async buy(number: string): Promise<OwnedNumber> {
    return { number, ref: number, capabilities: [...CHANNELS] };
  }

  async owned(number: string): Promise<OwnedNumber | undefined> {
    return { number, ref: number, capabilities: [...CHANNELS] };
  }

  async release(): Promise<void> {}
}

interface Range {
  size: number;
  at(i: number): string;
}

function fictionalRange(country: string, area: string): Range {
  if (country === 'US' || country === 'CA') {
    if (!/^[2-9]\d\d$/.test(area)) {
      throw new InvalidRequestError('areaCode must be a 3-digit NANP area code, such as 415', 'areaCode');
    }
    return { size: 100, at: (i) => `+1${area}5550${100 + i}` };
  }
  if (country === 'GB') {
    if (area === '20') return { size: 1000, at: (i) => `+44207946${pad(i)}` };
    if (area === '7700') return { size: 1000, at: (i) => `+44770090${pad(i)}` };
    if (/^1(1\d|\d1)$/.test(area)) return { size: 1000, at: (i) => `+44${area}496${pad(i)}` };
    throw new InvalidRequestError(
      'the simulator makes up GB numbers in Ofcom’s drama ranges only: areaCode 20, 7700, 11x or 1x1',
      'areaCode',
    );
  }
  throw new InvalidRequestError('the simulator makes up numbers for US, CA and GB only', 'country');
}

const pad = (i: number) => String(i).padStart(4, '0');
