import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { channelsOption, idArgument, integerOption, tagsOption } from '../../src/cli/input.ts';
import { InvalidRequestError } from '../../src/domain/errors.ts';

describe('CLI options', () => {
  it('reads --tag key=value pairs, keeping any = in the value', () => {
    assert.deepEqual(tagsOption(['city=sf', 'note=a=b']), { city: 'sf', note: 'a=b' });
    assert.equal(tagsOption([]), undefined);
    assert.throws(() => tagsOption(['city']), InvalidRequestError);
    assert.throws(() => tagsOption(['=sf']), InvalidRequestError);
    assert.throws(() => tagsOption([`${'k'.repeat(65)}=v`]), /at most 64/);
  });

  it('refuses an unknown capability instead of dropping it', () => {
    assert.deepEqual(channelsOption('voice, sms,voice'), ['voice', 'sms']);
    assert.equal(channelsOption(undefined), undefined);
    assert.throws(() => channelsOption('voice,fax'), /--capabilities must be voice, sms or voice,sms/);
    assert.throws(() => channelsOption(''), InvalidRequestError);
  });

  it('takes whole numbers within bounds only', () => {
    assert.equal(integerOption('600', '--ttl', 1, 86_400), 600);
    assert.equal(integerOption(undefined, '--ttl', 1, 86_400), undefined);
    for (const bad of ['0', '-1', '1.5', '1e3', 'ten', '']) {
      assert.throws(
        () => integerOption(bad, '--ttl', 1, 86_400),
        /--ttl must be a whole number from 1 to 86400/,
      );
    }
  });

  it('refuses what is not an id of the kind asked for, without repeating it', () => {
    assert.equal(idArgument('ses_01a2094c4047', 'ses', 'session'), 'ses_01a2094c4047');
    for (const bad of ['+14155550101', 'num_01a2', 'ses_', 'ses_a;b']) {
      assert.throws(
        () => idArgument(bad, 'ses', 'session'),
        (e: Error) => e.message === 'that is not a session id (ses_...)',
      );
    }
  });
});
