import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UnavailableError } from '../src/domain/errors.ts';
import { Thread } from '../src/thread.ts';
import type { StuckApi } from './support/stuck-thread-worker.ts';

const CALL_TIMEOUT_MS = 300;

/**
 * The thread boundary when the other side does not answer: a call ends by its timeout with a
 * clear 503-class error even though its work was done, an answer that cannot cross fails its own
 * call at once, and the thread goes on serving.
 */
describe('a thread that cannot answer', () => {
  let thread: Thread<StuckApi>;
  const errors: Error[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'veil-thread-'));
  before(async () => {
    thread = await Thread.start<StuckApi>({
      name: 'stuck',
      module: new URL('./support/stuck-thread-worker.ts', import.meta.url),
      workerData: {},
      callTimeoutMs: CALL_TIMEOUT_MS,
      stopTimeoutMs: 200,
      onError: (error) => errors.push(error),
    });
  });
  after(async () => {
    await thread.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails a call whose answer never comes within its timeout, though its work was done', async () => {
    const file = join(dir, 'written');
    const started = performance.now();
    await assert.rejects(thread.api.writeAndHang(file, 'done'), (error: unknown) => {
      assert.ok(error instanceof UnavailableError, String(error));
      assert.match(error.message, /the stuck thread did not answer writeAndHang within 300 ms/);
      return true;
    });
    const took = performance.now() - started;
    assert.ok(took >= CALL_TIMEOUT_MS - 20 && took < CALL_TIMEOUT_MS + 1_000, `took ${Math.round(took)} ms`);
    assert.equal(readFileSync(file, 'utf8'), 'done', 'the work behind the lost answer was done');
  });

  it('fails a call whose answer cannot cross at once, and keeps serving', async () => {
    const started = performance.now();
    await assert.rejects(thread.api.unanswerable(), /BigInt/);
    assert.ok(performance.now() - started < CALL_TIMEOUT_MS, 'it did not wait for the timeout');
    assert.equal(await thread.api.ping(), 'pong');
    assert.equal(thread.failure, undefined);
  });
});
