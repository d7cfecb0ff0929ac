import { appendFileSync } from 'node:fs';
import { serveThread } from '../../src/thread.ts';

/** What test/thread.test.ts runs on a thread: calls that do their work and never answer, or cannot. */
export interface StuckApi {
  /** Appends `text` to `file`, then never answers: a write done whose answer is lost. */
  writeAndHang(file: string, text: string): Promise<void>;
  /** Answers a value that cannot cross back as JSON (a BigInt). */
  unanswerable(): Promise<unknown>;
  ping(): Promise<string>;
}

await serveThread<StuckApi>(async () => ({
  api: {
    writeAndHang(file, text) {
      appendFileSync(file, text);
      return new Promise(() => {});
    },
    async unanswerable() {
      return { count: 1n };
    },
    async ping() {
      return 'pong';
    },
  },
  close() {},
}));
