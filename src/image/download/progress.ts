// Progress reports, throttled to one every 100 ms plus the final one.
import type { DownloadOptions, DownloadProgress } from './types.js';

const PROGRESS_EVERY_MS = 100;

export type Report = (progress: DownloadProgress, final?: boolean) => void;

export function throttle(onProgress: DownloadOptions['onProgress']): Report {
  let last = -Infinity;
  return (progress, final = false) => {
    if (!onProgress) return;
    const now = performance.now();
    if (!final && now - last < PROGRESS_EVERY_MS) return;
    last = now;
    onProgress(progress);
  };
}
