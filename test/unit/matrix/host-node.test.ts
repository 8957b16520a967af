import { describe, expect, it } from 'vitest';
import { explainNodeFailure } from '../../../src/matrix/host-node.js';

describe('explainNodeFailure', () => {
  it('names the missing C library versions', () => {
    const stderr =
      "/opt/kvmtest/node/bin/node: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.28' not found (required by /opt/kvmtest/node/bin/node)\n/opt/kvmtest/node/bin/node: /lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.26' not found";
    const message = explainNodeFailure('v20.20.2', stderr, 'ldd (Debian GLIBC 2.24-11+deb9u4) 2.24');
    expect(message).toMatch(/C library is too old, missing GLIBC_2.28, GLIBCXX_3.4.26 \(guest: ldd \(Debian GLIBC 2.24/);
    expect(message).toMatch(/node: 'guest'/);
  });

  it('recognises a guest without glibc (musl)', () => {
    expect(explainNodeFailure('v20.20.2', 'sh: /opt/kvmtest/node/bin/node: not found (no such interpreter /lib64/ld-linux-x86-64.so.2)', '')).toMatch(/musl/);
  });
});
