// The downloader's public API: resumable, verified HTTP downloads and small text fetches.
export { download } from './download.js';
export { fetchBytes, fetchText } from './fetch-text.js';
export { hashFile } from './hash.js';
export { backoffDelay } from './retry.js';
export type { Digest, DownloadOptions, DownloadProgress, DownloadResult, FetchTextOptions } from './types.js';
