import { kvmtestError } from '../errors.js';
import { which } from '../host/tools.js';
import { inspectBase } from '../image/base.js';
import { findBuilt } from '../image/build.js';
import { type CatalogArch, catalogSource } from '../image/catalog.js';
import { loadCatalog } from '../image/catalog-file.js';
import { isRecipeName, RECIPES, type RecipeName } from '../image/recipes.js';
import { isImageUrl, pullCatalogImage, resolveImage } from '../image/resolve.js';
import { type SignatureStatus, signaturePlan } from '../image/signature.js';
import { listCached, pruneCached, removeCached } from '../image/store.js';
import { defaultArch } from '../qemu/arch.js';
import { createProgress, formatTransfer } from '../util/progress.js';
import { parseDuration } from '../util/units.js';

/** `kvmtest image list`: the catalog, what of it is cached, built images, images pulled by URL. */
export async function imageList(): Promise<string> {
  const cached = await listCached();
  const catalog = await loadCatalog();
  const arch = defaultArch() as CatalogArch;
  const rows: string[][] = [['NAME', 'SOURCE', 'CACHED', 'NOTES', 'VERIFIED BY']];
  for (const entry of catalog) {
    const hit = cached.find((c) => c.name === entry.name);
    const built = isRecipeName(entry.name) ? await builtArches(entry.name) : '';
    const state = [hit ? `pulled ${mib(hit.size)}` : '', built].filter(Boolean).join(', ') || '-';
    const firmware = entry.arches[arch] ? catalogSource(entry, arch).firmware : undefined;
    const boots = firmware === 'uefi' ? 'needs UEFI' : firmware === 'bios' ? 'BIOS only' : 'BIOS or UEFI';
    const trust = entry.arches[arch] ? TRUST[(await signaturePlan(catalogSource(entry, arch).signature)).status] : '-';
    rows.push([entry.name, entry.arches[arch] ? entry.title : `${entry.title} (no ${arch} image)`, state, `${entry.init}, ${boots}`, trust]);
  }
  for (const name of Object.keys(RECIPES)) {
    if (catalog.some((e) => e.name === name)) continue;
    rows.push([name, "built from Debian's archive", (await builtArches(name as RecipeName)) || '-', 'kvmtest image build', 'apt (signed archive)']);
  }
  for (const image of cached.filter((c) => isImageUrl(c.name)))
    rows.push([image.url, 'URL', `pulled ${mib(image.size)}`, `${image.digest.algorithm}:${image.digest.hex.slice(0, 12)}…`, 'your digest']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  lines.push('', 'A built image (kvmtest image build) is used before the download of the same name.');
  lines.push(
    '"checksum only": verified against a same-origin checksum only (the checksum file comes from where the image does); "signature": the publisher\'s signature checked with a keyring installed on this host.',
  );
  return lines.join('\n');
}

/** `built (x86_64, aarch64)`: the architectures this recipe is built for in the cache, or ''. */
async function builtArches(name: RecipeName): Promise<string> {
  const arches: string[] = [];
  for (const arch of RECIPES[name].arches) if (await findBuilt(name, arch)) arches.push(arch);
  return arches.length > 0 ? `built (${arches.join(', ')})` : '';
}

/** `kvmtest image pull NAME|URL`: download, verify and cache, with progress. */
export async function imagePull(spec: string, signal?: AbortSignal, arch?: string): Promise<string> {
  // plain lines every 2 s: a download is worth following in a CI log
  const progress = createProgress(`image ${spec.length > 40 ? `${spec.slice(0, 37)}…` : spec}`, process.stderr, 2000);
  progress.phase('pulling');
  const started = Date.now();
  const onProgress = (p: { received: number; total?: number; resumedFrom: number }) => {
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    const rate = (p.received - p.resumedFrom) / seconds / 2 ** 20;
    progress.update(`${bar(p.received, p.total)} ${formatTransfer(p.received, p.total)} ${rate.toFixed(1)} MiB/s${p.resumedFrom ? ` (resumed at ${mib(p.resumedFrom)})` : ''}`);
  };
  try {
    const entry = (await loadCatalog()).find((e) => e.name === spec);
    const source = entry
      ? await pullCatalogImage(entry, { onProgress, ...(signal ? { signal } : {}), ...(arch ? { arch } : {}) })
      : isImageUrl(spec)
        ? await resolveImage(spec, { onProgress, ...(signal ? { signal } : {}) })
        : undefined;
    if (!source) throw kvmtestError('IMAGE_UNKNOWN', `${spec} is neither a catalog name (kvmtest image list) nor an https URL ending in #sha256=…`);
    // a pulled image that could not be booted (a backing file, a data file) is refused now, and leaves the cache
    const qemuImg = await which('qemu-img');
    if (!qemuImg) throw kvmtestError('QEMU_IMG_NOT_FOUND', 'qemu-img is not on PATH; it checks a pulled image before it is kept');
    await inspectBase(qemuImg, source);
    const digest = 'cached' in source ? source.cached.digest : undefined;
    // say what vouched for the digest: a publisher's signature, or only a checksum from where the image came
    const detail = source.kind === 'catalog' ? (source.cached.signature?.detail ?? 'verified against a same-origin checksum only') : 'verified against the digest in the URL';
    const by = detail.startsWith('verified ') ? detail.slice('verified '.length) : `and its ${detail}`;
    progress.done(`ready: ${source.path}${digest ? ` (${digest.algorithm} verified) ${by}` : ''}`);
    return source.path;
  } catch (error) {
    progress.fail('failed');
    throw error;
  }
}

export async function imageRemove(name: string): Promise<string> {
  if (!(await removeCached(name))) throw kvmtestError('IMAGE_UNKNOWN', `${name} is not in the cache (kvmtest image list shows what is)`);
  return `removed ${name}`;
}

/** `kvmtest image prune [--older-than 30d] [--max-size 20G]`. */
export async function imagePrune(flags: { olderThan?: string; maxSize?: string }): Promise<string> {
  const olderThanMs = flags.olderThan ? parseAge(flags.olderThan) : undefined;
  const maxBytes = flags.maxSize ? parseBytes(flags.maxSize) : undefined;
  if (olderThanMs === undefined && maxBytes === undefined) throw kvmtestError('INVALID_OPTION', 'kvmtest image prune needs --older-than (such as 30d) and/or --max-size (such as 20G)');
  const removed = await pruneCached({ ...(olderThanMs !== undefined ? { olderThanMs } : {}), ...(maxBytes !== undefined ? { maxBytes } : {}) });
  return removed.length === 0 ? 'nothing to prune' : removed.map((r) => `removed ${r.name} (${mib(r.size)}, last used ${r.usedAt})`).join('\n');
}

/** '30d', '12h', '90m' → ms. Pure. */
export function parseAge(value: string): number {
  const days = /^\s*(\d+(?:\.\d+)?)\s*d\s*$/.exec(value);
  return days ? Math.round(Number(days[1]) * 86_400_000) : parseDuration(value, 'older-than');
}

/** '20G', '500M' → bytes. Pure. */
export function parseBytes(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT])i?B?\s*$/i.exec(value);
  if (!match) throw kvmtestError('INVALID_OPTION', `Expected --max-size as a size such as 20G or 500M, got ${JSON.stringify(value)}`);
  return Math.round(Number(match[1]) * 1024 ** ('KMGT'.indexOf(match[2]!.toUpperCase()) + 1));
}

function bar(received: number, total?: number, width = 20): string {
  if (!total) return '';
  const full = Math.min(width, Math.round((received / total) * width));
  return `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

const TRUST: Record<SignatureStatus, string> = {
  verified: 'signature',
  'none-published': 'checksum only (no signature published)',
  'unverified-no-keyring': 'checksum only (no keyring installed)',
  'unverified-unsupported': 'checksum only',
};
