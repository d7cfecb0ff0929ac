import { parentPort, workerData } from 'node:worker_threads';
import { openStore } from '../store/db.ts';
import { InteractionLog } from '../store/interactions.ts';
import { type Answer, type Call, flatten, type WriterOptions } from './session-thread.ts';
import { SessionService } from './sessions.ts';

// The session writer thread (session-thread.ts): runs SessionService's writes on its own connection.
const port = parentPort as NonNullable<typeof parentPort>;
const answer = (message: Answer) => port.postMessage(message);
const options = workerData as WriterOptions;

try {
  const store = await openStore(options.store, { background: false });
  const sessions = new SessionService(store, new InteractionLog(store, () => {}), options.sessions);
  const running = new Set<Promise<void>>();
  port.on('message', (call: Call) => {
    if ('stop' in call) {
      void Promise.allSettled(running)
        .then(() => store.close())
        .then(() => port.close());
      return;
    }
    const method = sessions[call.method] as (...args: unknown[]) => Promise<unknown>;
    const done = method.apply(sessions, call.args).then(
      (value) => answer({ id: call.id, value }),
      (error) => answer({ id: call.id, error: flatten(error) }),
    );
    running.add(done);
    void done.finally(() => running.delete(done));
  });
  answer({ ready: true });
} catch (error) {
  answer({ failed: flatten(error) });
}
