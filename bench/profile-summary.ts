import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * Prints where a V8 CPU profile (`node --cpu-prof`) spent its time: self time by function and by
 * file, the heaviest first. Usage: node --import tsx bench/profile-summary.ts <file.cpuprofile | dir> [top]
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const DEFAULT_TOP = 30;

/** The file given, or the biggest profile of a directory: the main thread, not tsx's loader thread. */
function pickProfile(path: string): string {
  if (!statSync(path).isDirectory()) return path;
  const files = readdirSync(path)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(path, f))
    .sort((a, b) => statSync(b).size - statSync(a).size);
  if (!files[0]) throw new Error(`no .cpuprofile in ${path}`);
  return files[0];
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const path = url.replace(/^file:\/\//, '');
  const modules = path.lastIndexOf('node_modules/');
  return modules >= 0 ? path.slice(modules + 'node_modules/'.length) : relative(process.cwd(), path);
}

function selfTimes(profile: Profile): Map<number, number> {
  const times = new Map<number, number>();
  for (const [i, id] of profile.samples.entries()) {
    times.set(id, (times.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  return times;
}

function table(title: string, totals: Map<string, number>, all: number, top: number): string {
  const rows = [...totals].sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = rows.map(
    ([name, us]) =>
      `${((100 * us) / all).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`,
  );
  return [`${title}`, ...lines].join('\n');
}

/**
 * Time spent in each of the project's own functions and everything they call (a function already on
 * the stack is not counted twice): where in Veil's code the time goes, whatever library does the work.
 */
function inclusiveTimes(profile: Profile, byId: Map<number, ProfileNode>): Map<string, number> {
  const self = selfTimes(profile);
  const totals = new Map<string, number>();
  const visit = (id: number, onStack: Set<string>): number => {
    const node = byId.get(id);
    if (!node) return 0;
    const frame = node.callFrame;
    const own = frame.url.includes('/src/')
      ? `${frame.functionName || '(anonymous)'}  ${shortUrl(frame.url)}`
      : '';
    const fresh = own !== '' && !onStack.has(own);
    if (fresh) onStack.add(own);
    let total = frame.functionName === '(idle)' ? 0 : (self.get(id) ?? 0);
    for (const child of node.children ?? []) total += visit(child, onStack);
    if (fresh) {
      onStack.delete(own);
      totals.set(own, (totals.get(own) ?? 0) + total);
    }
    return total;
  };
  const root = profile.nodes[0];
  if (root) visit(root.id, new Set());
  return totals;
}

function main(): void {
  const [path, topText] = process.argv.slice(2);
  if (!path) throw new Error('usage: profile-summary.ts <file.cpuprofile | dir> [top]');
  const top = Number(topText ?? DEFAULT_TOP);
  const file = pickProfile(path);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let all = 0;
  for (const [id, us] of selfTimes(profile)) {
    const frame = byId.get(id)?.callFrame;
    if (!frame || frame.functionName === '(idle)') continue;
    const where = shortUrl(frame.url);
    const name = `${frame.functionName || '(anonymous)'}  ${where}:${frame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    byFile.set(where, (byFile.get(where) ?? 0) + us);
    all += us;
  }
  console.log(`${file}: ${(all / 1000).toFixed(0)} ms sampled\n`);
  console.log(table('self time by function', byFunction, all, top));
  console.log();
  console.log(table('self time by file', byFile, all, top));
  console.log();
  console.log(
    table(
      "total time in Veil's functions (src/), with what they call",
      inclusiveTimes(profile, byId),
      all,
      top,
    ),
  );
}

main();
