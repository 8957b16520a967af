/**
 * Physical resolution of a symbolic link inside a pulled tree, the way the kernel walks a path:
 * each component is looked up, a link met on the way is replaced by its own target (resolved from
 * the directory holding it), and `..` leaves the directory actually reached, not the one written.
 * Pure over `lookup`, so the rules are unit-tested without a file system.
 */

/** What a path inside the tree is, as lstat and readlink see it. */
export type TreeNode = { type: 'dir' } | { type: 'file' } | { type: 'link'; target: string } | { type: 'other' };

/** Looks a path (components under the root; [] is the root) up without following it; undefined when absent. */
export type Lookup = (parts: readonly string[]) => TreeNode | undefined | Promise<TreeNode | undefined>;

export type Resolution = { ok: true; parts: string[] } | { ok: false; reason: string };

/** Links followed in one resolution before giving up, as Linux does (ELOOP). */
export const MAX_LINK_HOPS = 40;

/** Shared by every resolution of one pull: lookups left before links are no longer checked (a bound on the work a guest can cause). */
export interface ResolveBudget {
  steps: number;
}

/**
 * Where the link at `dir`/<name> with `target` leads, as components under the root; or why it
 * may not stay: its target is absolute, it leads above the root, it dangles, it loops.
 */
export async function resolveLink(dir: readonly string[], target: string, lookup: Lookup, budget: ResolveBudget = { steps: Infinity }): Promise<Resolution> {
  const hops = { count: 0 };
  return walk(dir, target, lookup, hops, budget);
}

async function walk(from: readonly string[], target: string, lookup: Lookup, hops: { count: number }, budget: ResolveBudget): Promise<Resolution> {
  if (target === '') return { ok: false, reason: 'empty link target' };
  if (target.startsWith('/')) return { ok: false, reason: `absolute link target ${target}` };
  const at = [...from];
  const parts = target.split('/').filter((part) => part !== '' && part !== '.');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '..') {
      // the parent of the directory reached so far: `at` is always a physical path, so this is the kernel's `..`
      if (at.length === 0) return { ok: false, reason: 'resolves outside the destination' };
      at.pop();
      continue;
    }
    if (--budget.steps < 0) return { ok: false, reason: 'not checked: too many link lookups in this pull' };
    const next = [...at, part];
    const node = await lookup(next);
    if (!node) return { ok: false, reason: `dangles: ${next.join('/')} does not exist` };
    const last = i === parts.length - 1;
    if (node.type === 'link') {
      if (++hops.count > MAX_LINK_HOPS) return { ok: false, reason: 'too many levels of symbolic links' };
      const inner = await walk(at, node.target, lookup, hops, budget);
      if (!inner.ok) return inner;
      if (!last && (await lookup(inner.parts))?.type !== 'dir') return { ok: false, reason: `dangles: ${next.join('/')} is not a directory` };
      at.splice(0, at.length, ...inner.parts);
    } else if (node.type === 'dir' || last) {
      at.push(part);
    } else {
      return { ok: false, reason: `dangles: ${next.join('/')} is not a directory` };
    }
  }
  return { ok: true, parts: at };
}
