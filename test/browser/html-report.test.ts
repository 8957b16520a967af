/**
 * The HTML report in a real browser: Debian's Chromium, headless, driven by playwright-core (no
 * browser download). The page is opened from disk as a user would open it; assertions are on what
 * renders: the grid's statuses, a failed case's message shown as text (hostile markup inert), the
 * keyboard path to the first failure, dark mode, a narrow window. Screenshots go to test-artifacts/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHtml } from '../../src/report/html.js';
import { debian11, debian12, debian13, fedora41, report } from '../unit/fixtures/sample-run.js';
import { backgroundOf, launchChromium } from './chromium.js';

const artifacts = join(__dirname, '../../test-artifacts');
const HOSTILE_MESSAGE = '<img src=x onerror="window.__pwned=1"> expected 2 to be 3';

let dir: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'html-report-'));
  mkdirSync(join(dir, 'cells/debian-11'), { recursive: true });
  writeFileSync(join(dir, 'cells/debian-11/console.log'), 'console of debian-11\n');
  const failing = {
    ...debian11,
    id: 'debian-11/cpus=2',
    axes: { cpus: 2 },
    consoleLog: join(dir, 'cells/debian-11/console.log'),
    stderrTail: '<script>window.__pwned=2</script>\x1b[31mred\x1b[0m',
    cases: [...debian11.cases, { name: 'hostile', suite: 'parser', status: 'failed' as const, message: HOSTILE_MESSAGE, file: '/work/junit.xml' }],
  };
  const cells = [
    failing,
    { ...debian12, id: 'debian-12/cpus=2', axes: { cpus: 2 } },
    { ...debian12, id: 'debian-12/cpus=1', axes: { cpus: 1 } },
    { ...debian13, axes: { cpus: 1 }, id: 'debian-13/cpus=1' },
    { ...fedora41, axes: { cpus: 1 }, id: 'fedora-41/cpus=1' },
  ];
  writeFileSync(join(dir, 'index.html'), toHtml(report(cells), { baseDir: dir }));
  mkdirSync(artifacts, { recursive: true });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(pathToFileURL(join(dir, 'index.html')).href);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the HTML report in headless Chromium', () => {
  it('shows the grid: images as rows, cpus as columns, each cell coloured by its status', async () => {
    expect(await page.locator('[data-testid="overall"]').innerText()).toBe('failed');
    const statuses = await page.locator('table.grid td[data-status]').evaluateAll((tds) => tds.map((td) => `${td.getAttribute('data-cell')}: ${td.getAttribute('data-status')}`));
    expect(statuses.sort()).toEqual(['debian-11/cpus=2: failed', 'debian-12/cpus=1: passed', 'debian-12/cpus=2: passed', 'debian-13/cpus=1: error', 'fedora-41/cpus=1: flaky'].sort());
    const failedColour = await backgroundOf(page.locator('td[data-status="failed"]'));
    const passedColour = await backgroundOf(page.locator('td[data-status="passed"]').first());
    expect(failedColour).not.toBe(passedColour);
    expect(await page.locator('td[data-status="flaky"]').innerText()).toBe('flaky (2 attempts)');
    await page.screenshot({ path: join(artifacts, 'html-report.png'), fullPage: true });
  });

  it("shows a failed case's message as text: the guest's markup stays inert", async () => {
    const failed = page.locator('section[data-status="failed"]');
    expect(await failed.locator('details').first().getAttribute('open')).not.toBeNull();
    const messages = await failed.locator('.case .message').allInnerTexts();
    expect(messages).toContain(HOSTILE_MESSAGE);
    expect(await failed.locator('pre').allInnerTexts()).toContain('<script>window.__pwned=2</script>red');
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(await page.locator('section img, section script').count()).toBe(0);
    // the error cell shows its code and console tail; the passed ones start closed
    expect(await page.locator('section[data-status="error"]').innerText()).toContain('BOOT_TIMEOUT');
    expect(await page.locator('section[data-status="passed"] details[open]').count()).toBe(0);
  });

  it('links the console log relative to the page, and the link opens it', async () => {
    const href = await page.locator('section[data-status="failed"] a', { hasText: 'console log' }).getAttribute('href');
    expect(href).toBe('cells/debian-11/console.log');
    expect(existsSync(join(dir, href!))).toBe(true);
  });

  it('takes the keyboard to the first failure: Tab reaches the skip link, Enter jumps to the failed cell', async () => {
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to the first failed cell');
    await page.keyboard.press('Enter');
    const target = await page.evaluate<string>('location.hash');
    expect(await page.locator(`section${target}`).getAttribute('data-status')).toBe('failed');
  });

  it('reads in dark mode and fits a narrow window', async () => {
    const light = await page.evaluate('getComputedStyle(document.body).backgroundColor');
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await page.evaluate('getComputedStyle(document.body).backgroundColor');
    expect(dark).not.toBe(light);
    await page.screenshot({ path: join(artifacts, 'html-report-dark.png'), fullPage: true });
    await page.setViewportSize({ width: 360, height: 800 });
    // the page itself does not scroll sideways (the grid scrolls in its own box)
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
    await page.screenshot({ path: join(artifacts, 'html-report-narrow.png'), fullPage: true });
  });
});
