/**
 * `npm start` with its code loaded ahead of time: this process imports all that src/main.ts
 * imports, prints SPARE_LOADED, waits for SIGUSR2, and only then imports src/main.ts, which starts
 * the server exactly as `npm start` does (configuration, database, workers, HTTP). A run that
 * restarts Veil many times over one database (test/crash/faults.ts) loads the next process while
 * the last one runs: only the loading (seconds of CPU through tsx) moves earlier, nothing that
 * reads the environment or touches the database.
 */
const SPARE_LOADED = 'spare: code loaded';

const loaded = import('../../src/cli/main.ts');
// The process waits for its turn; a signal listener alone would not keep it alive.
const waiting = setInterval(() => {}, 2 ** 30);
process.once('SIGUSR2', () => {
  clearInterval(waiting);
  void loaded.then(() => import('../../src/main.ts'));
});
loaded.then(
  () => console.log(SPARE_LOADED),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
