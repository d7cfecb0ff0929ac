import { appendFileSync } from 'node:fs';
import { serveThread } from '../../src/thread.ts';

/** What test/thread.test.ts runs on a thread: calls that do their work and never answer, or cannot. */
export interface StuckApi {
  /** Appends `text` to `file`, then never answers: a write done whose answer is lost. */
  writeAndHang(file: string, text: string): Promise<void>;
  /** Answers a value nested too deep to cross back as JSON. */
  tooDeep(levels: number): Promise<unknown>;
  ping(): Promise<string>;
}

await serveThread<StuckApi>(async () => ({
  api: {
    writeAndHang(file, text) {
      appendFileSync(file, text);
      return new Promise(() => {});
    },
    async tooDeep(levels) {
      let value: unknown = 1;
      for (let i = 0; i < levels; i++) value = { a: value };
      return value;
    },
    async ping() {
      return 'pong';
    },
  },
  close() {},
}));
