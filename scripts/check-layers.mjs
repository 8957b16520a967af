#!/usr/bin/env node
// Fails when folders under src/ import each other in a cycle (issue #11: layers point one way).
// Usage: node scripts/check-layers.mjs [srcDir] [--allow allow.json]
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

// static imports and re-exports, `import type` included; comments are stripped first
const FROM = /\b(?:import|export)\s+(?:type\s+)?(?:[\w*${}\s,]+?\s+from\s+)?['"]([^'"]+)['"]/g;
// import('./x.js') with a literal path is a dependency too
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

function* sourceFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (/\.(?:ts|mts|cts)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) yield path;
  }
}

/** The graph node of a file: its top-level folder under src/, or the root file's name (errors.ts → errors). */
function nodeOf(srcDir, file) {
  const parts = relative(srcDir, file).split(sep);
  return parts.length > 1 ? parts[0] : parts[0].replace(/\.[cm]?[jt]s$/, '');
}

/** Folder → folder edges, each with the imports that make it (file → specifier). */
export function folderGraph(srcDir) {
  const edges = new Map();
  for (const file of sourceFiles(srcDir)) {
    const from = nodeOf(srcDir, file);
    const text = stripComments(readFileSync(file, 'utf8'));
    for (const [, spec] of [...text.matchAll(FROM), ...text.matchAll(DYNAMIC)]) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      if (relative(srcDir, target).startsWith('..')) continue;
      const to = nodeOf(srcDir, target);
      if (to === from) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      const byTarget = edges.get(from);
      if (!byTarget.has(to)) byTarget.set(to, []);
      byTarget.get(to).push(`${relative(srcDir, file)} → ${spec}`);
    }
  }
  return edges;
}

/** Strongly connected components with more than one folder (Tarjan): each is a cycle. */
export function cycles(edges) {
  const nodes = new Set([...edges.keys(), ...[...edges.values()].flatMap((m) => [...m.keys()])]);
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  let next = 0;
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of [...nodes].sort()) if (!index.has(v)) visit(v);
  return found;
}

const sameSet = (a, b) => a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);

/** The problems: cycles not allowed, and allow-list entries whose cycle is gone. Empty when the layers are fine. */
export function checkLayers(srcDir, allowed = []) {
  const edges = folderGraph(srcDir);
  const found = cycles(edges);
  const problems = [];
  for (const component of found) {
    if (allowed.some((entry) => sameSet(entry.folders, component))) continue;
    const lines = [`cycle between folders: ${component.join(' ↔ ')}`];
    for (const from of component) {
      for (const [to, imports] of edges.get(from) ?? []) {
        if (!component.includes(to)) continue;
        lines.push(`  ${from} → ${to}:`, ...imports.map((i) => `    ${i}`));
      }
    }
    problems.push(lines.join('\n'));
  }
  for (const entry of allowed) {
    if (!found.some((component) => sameSet(entry.folders, component))) {
      problems.push(`allow-list entry ${[...entry.folders].sort().join(' ↔ ')} (${entry.issue ?? 'no issue'}) has no cycle any more: remove it from the allow-list`);
    }
  }
  return problems;
}

function main(argv) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const at = argv.indexOf('--allow');
  const allowFile = at >= 0 ? resolve(argv[at + 1]) : join(root, 'scripts', 'layers-allow.json');
  const rest = at >= 0 ? argv.filter((_, i) => i !== at && i !== at + 1) : argv;
  const srcDir = resolve(rest[0] ?? join(root, 'src'));
  const allowed = existsSync(allowFile) ? (JSON.parse(readFileSync(allowFile, 'utf8')).cycles ?? []) : [];
  const problems = checkLayers(srcDir, allowed);
  if (problems.length) {
    process.stderr.write(`check-layers: ${problems.length} problem(s) in ${relative(process.cwd(), srcDir) || '.'}\n\n${problems.join('\n\n')}\n`);
    process.exitCode = 1;
  } else {
    const list = allowed.map((e) => `${e.folders.join('↔')} (${e.issue})`).join(', ');
    process.stdout.write(`check-layers: no cycles between folders of ${relative(process.cwd(), srcDir) || '.'}${list ? `; allowed for now: ${list}` : ''}\n`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
