import { basename, dirname } from 'node:path';
import { kvmtestError } from '../errors.js';
import { listCached } from '../image/store.js';
import { listSnapshots, type SnapshotEntry } from '../snapshot/list.js';
import { type PrunedSnapshot, pruneSnapshots, SNAPSHOT_MAX_AGE_MS } from '../snapshot/prune.js';
import { snapshotsRoot } from '../snapshot/store.js';
import { sanitize } from '../util/sanitize.js';
import { parseAge } from './image.js';

/** `kvmtest cache list`: every warm snapshot and setup layer, its size on disk, last use and state. */
export async function cacheList(now = Date.now()): Promise<string> {
  const entries = await listSnapshots();
  return formatCacheList(entries, { now, imageNames: await pulledNames(entries), root: snapshotsRoot() });
}

/** `kvmtest cache prune [--older-than 7d] [--all]`. */
export async function cachePrune(flags: { olderThan?: string; all?: boolean }): Promise<string> {
  if (flags.all && flags.olderThan !== undefined) throw kvmtestError('INVALID_OPTION', 'kvmtest cache prune takes --all or --older-than, not both (--all removes every entry no builder holds)');
  const olderThanMs = flags.olderThan !== undefined ? parseAge(flags.olderThan) : SNAPSHOT_MAX_AGE_MS;
  const removed = await pruneSnapshots({ olderThanMs, all: Boolean(flags.all) });
  return formatPruned(removed, { now: Date.now(), imageNames: await pulledNames(removed) });
}

/** A pulled image is a blob named by its digest: the names they were pulled as (none looked up, and no cache made, for nothing). */
async function pulledNames(items: readonly unknown[]): Promise<Map<string, string>> {
  if (items.length === 0) return new Map();
  return new Map((await listCached()).map((image) => [image.path, image.name]));
}

export interface FormatContext {
  now: number;
  /** A pulled image's blob path → the name it was pulled as. */
  imageNames?: ReadonlyMap<string, string>;
  /** Named when the cache is empty. */
  root?: string;
}

/** The table of `kvmtest cache list`, with a total line. Pure. */
export function formatCacheList(entries: readonly SnapshotEntry[], context: FormatContext): string {
  if (entries.length === 0) return `no snapshots${context.root ? ` in ${context.root}` : ''}`;
  const layers = entries.some((e) => e.layer);
  const head = ['KEY', 'KIND', 'IMAGE', 'SIZE', 'LAST USED', 'STATUS', ...(layers ? ['LABEL'] : [])];
  const rows = entries.map((e) => [
    sanitize(e.key.slice(0, 12)),
    e.kind,
    imageLabel(e.baseImage, context.imageNames),
    formatMiB(e.bytes),
    formatAgo(context.now - e.lastUsedMs),
    statusText(e),
    ...(layers ? [e.layer ? sanitize(e.layer.label) : ''] : []),
  ]);
  const total = entries.reduce((sum, e) => sum + e.bytes, 0);
  const ready = entries.filter((e) => e.status === 'ready').length;
  const lines = table([head, ...rows], [3]);
  lines.push(`total ${formatMiB(total)} in ${entries.length} ${entries.length === 1 ? 'entry' : 'entries'} (${ready} ready); kvmtest cache prune removes the incomplete and the unused`);
  return lines.join('\n');
}

/** What `kvmtest cache prune` removed, and the bytes freed. Pure. */
export function formatPruned(removed: readonly PrunedSnapshot[], context: FormatContext): string {
  if (removed.length === 0) return 'nothing to prune';
  const lines = removed.map((r) => {
    const why = r.why === 'incomplete' ? statusText(r.entry) : r.why === 'unused' ? `unused for ${formatAgo(context.now - r.entry.lastUsedMs).replace(/ ago$/, '')}` : 'all';
    const label = r.entry.layer ? ` "${sanitize(r.entry.layer.label)}"` : '';
    return `removed ${sanitize(r.key.slice(0, 12))} (${r.entry.kind}${label}, ${imageLabel(r.entry.baseImage, context.imageNames)}, ${formatMiB(r.bytes)}): ${why}`;
  });
  lines.push(`freed ${formatMiB(removed.reduce((sum, r) => sum + r.bytes, 0))}`);
  return lines.join('\n');
}

/**
 * A short name for a base image: the name a pulled blob was pulled as; for a file named disk.* (a
 * built image: images/debian-12-<recipe key>/disk.qcow2) its folder without the key; else the file's name. Pure.
 */
export function imageLabel(baseImage: string | undefined, names?: ReadonlyMap<string, string>): string {
  if (!baseImage) return '-';
  const named = names?.get(baseImage);
  if (named) return sanitize(named);
  const file = basename(baseImage);
  const label = /^disk\.[a-z0-9]+$/.test(file) ? basename(dirname(baseImage)).replace(/-[0-9a-f]{16}$/, '') : file;
  return sanitize(label.length > 40 ? `${label.slice(0, 39)}…` : label);
}

/** '12 s ago', '5 min ago', '3 h ago', '9 d ago'. Pure. */
export function formatAgo(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s < 5 ? 'just now' : `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

function formatMiB(bytes: number): string {
  if (bytes > 0 && bytes < 2 ** 20) return '<1 MiB'; // not '0 MiB': something is there
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

function statusText(entry: SnapshotEntry): string {
  if (entry.status === 'building') return 'in use by a builder';
  if (entry.status === 'ready') return 'ready';
  return `incomplete${entry.reason ? `: ${entry.reason}` : ''}`;
}

/** Columns padded to their widest cell; the columns in rightAligned (numbers) padded on the left. */
function table(rows: readonly string[][], rightAligned: readonly number[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (rightAligned.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}
