import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkKeyring, DEBIAN_KEYRING, staleHandlers } from '../../../src/image/build.js';
import { recipeDir } from '../../../src/image/recipes.js';

const script = readFileSync(join(recipeDir('debian-12'), 'build.sh'), 'utf8');

describe('image builds check the archive signatures', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-keyring-'));
    dirs.push(dir);
    return dir;
  };

  it('a missing keyring is IMAGE_BUILD_FAILED before debootstrap, naming the package to install', async () => {
    await expect(checkKeyring('debian-12', join(tempDir(), 'none.gpg'))).rejects.toMatchObject({
      code: 'IMAGE_BUILD_FAILED',
      message: expect.stringMatching(/debian-12 checks the Debian archive's signatures against .*none\.gpg, which is missing: install the debian-archive-keyring package/),
    });
  });

  it('a directory in its place is refused too; a keyring file passes', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'dir.gpg'));
    await expect(checkKeyring('debian-13', join(dir, 'dir.gpg'))).rejects.toMatchObject({ code: 'IMAGE_BUILD_FAILED', message: expect.stringMatching(/is not a file/) });
    writeFileSync(join(dir, 'keyring.gpg'), 'keys');
    await expect(checkKeyring('debian-13', join(dir, 'keyring.gpg'))).resolves.toBeUndefined();
  });

  it('every debootstrap of the recipe forces the signature check against the keyring the host check looks at', () => {
    const runs = script.split('\n').filter((line) => /\brun debootstrap\b/.test(line));
    expect(runs).toHaveLength(2);
    for (const line of runs) expect(line).toMatch(/debootstrap --force-check-gpg --keyring="\$KEYRING" /);
    expect(script).toContain(`KEYRING=${DEBIAN_KEYRING}\n`);
    expect(script).not.toMatch(/--no-check-gpg/);
  });
});

describe('binfmt_misc handlers a killed build left', () => {
  it('are the kvmtest-ARCH-PID handlers whose PID runs no build; live builds and other handlers stay', () => {
    const names = ['register', 'status', 'qemu-aarch64', 'kvmtest-arm64-4242', 'kvmtest-riscv64-77', 'kvmtest-arm64-x', 'kvmtest-arm64-0', 'kvmtest-arm64-4242-old'];
    const asked: number[] = [];
    const stale = staleHandlers(names, (pid) => {
      asked.push(pid);
      return pid === 77;
    });
    expect(stale).toEqual(['kvmtest-arm64-4242']);
    expect(asked).toEqual([4242, 77]);
  });
});
