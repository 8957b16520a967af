import { describe, expect, it } from 'vitest';
import { cacheDir } from '../../../src/host/paths.js';
import { hostFamily, installHint, parseQemuVersion } from '../../../src/host/tools.js';

describe('disk images and host', () => {
  it('install hints follow the host family', () => {
    expect(hostFamily('ID=ubuntu\nID_LIKE=debian\n')).toBe('debian');
    expect(hostFamily('ID="fedora"\n')).toBe('fedora');
    expect(installHint('qemu-img', 'debian')).toBe('sudo apt-get install -y qemu-utils');
    expect(installHint('iso', 'fedora')).toBe('sudo dnf install -y genisoimage');
  });

  it('parses QEMU versions and finds the cache directory', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)')).toBe('7.2.22');
    expect(cacheDir({ KVMTEST_CACHE: '/c' })).toBe('/c');
    expect(cacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/kvmtest');
  });
});
