// The public types of the downloader: options, progress reports and results.
import type { Dispatcher } from 'undici';

export interface Digest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
}

export interface DownloadProgress {
  /** Bytes in the file so far, including those resumed from. */
  received: number;
  /** Size of the whole file, when the server said. */
  total?: number;
  /** Where the current attempt started (0 unless resuming). */
  resumedFrom: number;
  attempt: number;
}

export interface DownloadOptions {
  url: string;
  /** Final path; written only after verification (rename of the partial file). */
  dest: string;
  /** Where the partial download lives between attempts and processes (default `${dest}.partial`); a later call resumes it. */
  partial?: string;
  /** Verified before the rename; also picks the algorithm of the returned digest (default sha256). */
  expected?: Digest;
  /** At most every 100 ms, plus a final call once the whole file is on disk. */
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Retries after the first attempt (default 4), with exponential backoff and jitter. */
  retries?: number;
  /** Base of the backoff (default 500 ms, doubled per failure, capped at 10 s). */
  backoffMs?: number;
  /** No byte for this long fails the attempt (default 60 s); after the last retry → DOWNLOAD_TIMEOUT. */
  idleTimeoutMs?: number;
  /** Default: one shared dispatcher honouring HTTP_PROXY/HTTPS_PROXY/NO_PROXY (and lowercase). */
  dispatcher?: Dispatcher;
}

export interface DownloadResult {
  path: string;
  digest: Digest;
  bytes: number;
  /** The file was completed from bytes fetched earlier (a previous call or an interrupted attempt), not in one response. */
  resumed: boolean;
  /** Requests made by this call. */
  attempts: number;
}

export interface FetchTextOptions {
  signal?: AbortSignal;
  retries?: number;
  dispatcher?: Dispatcher;
  /** Larger bodies fail with DOWNLOAD_FAILED (default 1 MiB). */
  maxBytes?: number;
  backoffMs?: number;
  idleTimeoutMs?: number;
}
