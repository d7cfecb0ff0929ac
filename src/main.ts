import { runVeil } from './cli/main.ts';

/** `npm start`: `veil serve`, the server with the environment of DESIGN §6. */
void runVeil([process.argv[0] ?? 'node', 'veil', 'serve', ...process.argv.slice(2)]);
