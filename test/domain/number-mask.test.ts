import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { maskNumbersInText } from '../../src/domain/phone.ts';
import { createLogger } from '../../src/logger.ts';
import { type TestApp, testApp } from '../support/app.ts';
import { describeStores } from '../support/stores.ts';

/** How numbers get written in text, each with the number it is. */
const FORMATS: [written: string, e164: string][] = [
  ['+1 (415) 555-0100', '+14155550100'],
  ['+44 7700 900123', '+447700900123'],
  ['+14155550100x', '+14155550100'],
  ['abc+14155550100', '+14155550100'],
  ['(415) 555-0100', '+14155550100'],
  ['(415)555-0100', '+14155550100'],
  ['415.555.0100', '+14155550100'],
  ['415-555-0100', '+14155550100'],
  ['1-415-555-0100', '+14155550100'],
  ['1 (415) 555-0100', '+14155550100'],
  ['+1 415 555 0100', '+14155550100'],
  ['+1-415-555-0100', '+14155550100'],
  ['+1.415.555.0100', '+14155550100'],
  ['+1/415/555/0100', '+14155550100'],
  ['+1 \u2013 415 \u2013 555 \u2013 0100', '+14155550100'],
  ['+1\u00a0415\u00a0555\u00a00100', '+14155550100'],
  ['+1\u202f415\u202f555\u202f0100', '+14155550100'],
  ['+1\t415\t555\t0100', '+14155550100'],
  ['tel:+1-415-555-0100', '+14155550100'],
  ['+1 415 555 0100 x123', '+14155550100'],
  ['+1 (415) 555-0100 ext. 5', '+14155550100'],
  ['+1 (415) 555-0100;ext=22', '+14155550100'],
  ['+1 (555) 123-4567', '+15551234567'], // not a valid number, and still someone's to hide
  ['+1 415 555 0100 3 times', '+14155550100'],
  ['%2B1%20(415)%20555-0100', '+14155550100'],
  ['%2B1%20%28415%29%20555-0100', '+14155550100'],
  ['+1+415+555+0100', '+14155550100'],
  ['%2B44+7700+900123', '+447700900123'],
  ['+1\\u00a0415\\u00a0555\\u00a00100', '+14155550100'], // as ASCII-only JSON writes a no-break space
  ['+49 30 901820', '+4930901820'],
  ['+33 1 23 45 67 89', '+33123456789'],
  ['+91 98765 43210', '+919876543210'],
  ['+55 11 91234-5678', '+5511912345678'],
  ['+81 3-1234-5678', '+81312345678'],
  ['+86 138 0013 8000', '+8613800138000'],
  ['+62 812-3456-7890', '+6281234567890'],
  ['+7 800 555-35-35', '+78005553535'],
  ['+61 2 9876 5432', '+61298765432'],
  ['+34 612 34 56 78', '+34612345678'],
  ['+44 (0)20 7946 0101', '+442079460101'],
  ['+4420 7946 0101', '+442079460101'],
  ['0044 7700 900123', '+447700900123'],
  ['011 44 7700 900123', '+447700900123'],
  ['+683 4002', '+6834002'],
];

/** Text that holds digits and no number: masking must leave it as it is. */
const NOT_NUMBERS = [
  '2026-12-05T17:06:07.123Z',
  '2026-01-01T12:34:56+01:00',
  '2026-12-05 17:06:07.123+00',
  '05.12.2026 17:06',
  '12/05/2026 17:06',
  'expires at 1733418367123',
  'ses_019b76daa8000003cea07a297f58',
  'int_01234567890123456789',
  '123e4567-e89b-12d3-a456-426614174000',
  '00000000-0000-1000-8000-00805f9b34fb',
  'deadbeef1234567890abcdef',
  'CA11111111111111111111111111111111',
  'took 12.5ms',
  '"responseTime":0.5604579999999999',
  'node v20.20.2, libphonenumber-js 1.13.16',
  '127.0.0.1:3000',
  '172.16.254.100',
  '192.168.100.200:8080',
  '::ffff:192.168.100.200',
  'port 3000, took 12345 ms, dropped 123456789',
  'Content-Length: 1234, bytes=0-1023',
  '{"level":30,"time":"2026-12-05T17:06:07.123Z","pid":48213,"reqId":"req-1","res":{"statusCode":200},"responseTime":1.8123459815979004,"msg":"request completed"}',
];

/**
 * `masked` shows `e164` nowhere: neither as `written` nor as a run of its national significant
 * number's digits but the last two, however punctuated; and at least half of those digits are hidden.
 */
function assertHidden(masked: string, written: string, e164: string): void {
  const national = parsePhoneNumberFromString(e164)?.nationalNumber;
  assert.ok(national, e164);
  assert.ok(!masked.includes(written), `${written} in clear: ${masked}`);
  // Encodings hold digits of their own (%20, \u00a0); stars stay, as they break a run.
  const digits = masked.replace(/%[0-9a-f]{2}|\\u[0-9a-f]{4}/gi, ' ').replace(/[^\d*]/g, '');
  assert.ok(!digits.includes(national.slice(0, -2)), `${written} readable in ${masked}`);
  const stars = masked.match(/\*/g)?.length ?? 0;
  assert.ok(2 * stars >= national.length, `${written} too little hidden: ${masked}`);
}

describe('maskNumbersInText, however a number is written', () => {
  for (const [written, e164] of FORMATS) {
    it(`hides ${JSON.stringify(written)}`, () => {
      const masked = maskNumbersInText(`call ${written} now`);
      assertHidden(masked, written, e164);
      assert.match(masked, /^call .+ now$/);
    });
  }

  it('hides each of them inside a JSON string, and the line stays JSON', () => {
    for (const [written, e164] of FORMATS) {
      const masked = maskNumbersInText(JSON.stringify({ msg: `line one\nline two: ${written}` }));
      assertHidden(masked, JSON.stringify(written).slice(1, -1), e164);
      assert.ok(JSON.parse(masked).msg.startsWith('line one\nline two: '), masked);
    }
  });

  it('keeps the punctuation and the ends of a number, so the line still reads', () => {
    assert.equal(maskNumbersInText('call +1 (415) 555-0100 now'), 'call +1 (415) ***-**00 now');
    assert.equal(maskNumbersInText('call (415) 555-0100 x12'), 'call (415) ***-**00 x12');
    assert.equal(maskNumbersInText('To=%2B44%207700%20900123'), 'To=%2B44%2077**%20****23');
    // Plain E.164 masks as it always has.
    assert.equal(maskNumbersInText('from +14155550102'), 'from +1415*****02');
  });

  it('hides every number of a line, whatever sits between them', () => {
    const masked = maskNumbersInText('+1 415 555 0100 / +44 7700 900123, (415) 555-0101 and 0049 30 901820');
    for (const [written, e164] of [
      ['+1 415 555 0100', '+14155550100'],
      ['+44 7700 900123', '+447700900123'],
      ['(415) 555-0101', '+14155550101'],
      ['0049 30 901820', '+4930901820'],
    ] as const)
      assertHidden(masked, written, e164);
  });

  it('leaves timestamps, ids, uuids, hex, durations, versions and addresses alone', () => {
    for (const text of NOT_NUMBERS) assert.equal(maskNumbersInText(text), text);
  });

  it('masks a long run of numbers whole, in time', () => {
    const list = Array.from({ length: 5000 }, (_, i) => `415-555-${String(i).padStart(4, '0')}`).join(' ');
    const started = performance.now();
    const masked = maskNumbersInText(list);
    assert.ok(performance.now() - started < 1000, 'libphonenumber searched the whole list');
    assert.ok(!/555-\d{4}/.test(masked), masked.slice(0, 200));
  });
});

describe('createLogger, with numbers however written', () => {
  it('writes none of them in clear, in the message or any field', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => lines.push(line) });
    for (const [written] of FORMATS)
      logger.warn({ from: written, err: { message: `refused ${written}` } }, `call from ${written}`);
    assert.equal(lines.length, FORMATS.length);
    for (const [i, line] of lines.entries()) {
      const [written, e164] = FORMATS[i] ?? [];
      assert.ok(written && e164);
      // Field by field: the line's time and pid are digits too.
      const { from, err, msg } = JSON.parse(line);
      for (const value of [from, err.message, msg]) assertHidden(value, written, e164);
    }
  });
});

describeStores('an error answer that would quote a number', { only: 'sqlite' }, (store) => {
  let t: TestApp;
  before(async () => {
    t = await testApp(store());
  });
  after(async () => {
    await t?.close();
  });

  it('masks it, whether it came in the path decoded or encoded', async () => {
    // As a person writes them; the client encodes them for the URL.
    for (const [written, e164] of FORMATS.filter(([w]) => !/[%\\]/.test(w))) {
      const segment = encodeURIComponent(written);
      // "number <id> not found" quotes the id decoded; "no route" quotes the URL as sent. Its stars
      // (assertHidden counts them) show the number was quoted, and masked.
      for (const [url, quoted] of [
        [`/v1/numbers/${segment}`, written],
        [`/v1/no-such/${segment}`, segment],
      ] as const) {
        const r = await t.api('GET', url);
        assert.equal(r.statusCode, 404, `${url} → ${r.body}`);
        const { code, message } = r.json().error;
        assert.equal(code, 'not_found');
        assertHidden(message, quoted, e164);
      }
    }
  });
});
