// Debian's Chromium, headless, for the tests that look at a page (scripts/setup installs it; no browser download).
import { type Browser, chromium, type Locator } from 'playwright-core';

export const CHROMIUM = process.env.KVMTEST_CHROMIUM ?? '/usr/bin/chromium';

/** Flags for a closed network: no background connections, no update checks, a fresh profile. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** The computed background colour of what a locator finds (the test files are compiled without the DOM lib). */
export function backgroundOf(locator: Locator): Promise<string> {
  return locator.evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor);
}
