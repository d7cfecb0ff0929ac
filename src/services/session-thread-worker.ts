import { openStore } from '../store/store.ts';
import { serveThread } from '../thread.ts';
import type { SessionThreadData } from './session-thread.ts';
import { type SessionWriter, StoreSessionWriter } from './session-writer.ts';

// The session writer thread (session-thread.ts): the SessionWriter on a connection of its own.
await serveThread<SessionWriter>(async (data) => {
  const { store: config, keys, allocation } = data as SessionThreadData;
  const store = await openStore(config, { keys, background: false });
  return { api: new StoreSessionWriter(store, allocation), close: () => store.close() };
});
