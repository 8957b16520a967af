#!/usr/bin/env node
// The reaper process (started detached by kvmtest itself): `node reaper/main.js CACHE_DIR`.
import { runDaemon } from './daemon.js';

const cache = process.argv[2];
if (!cache) {
  process.stderr.write('usage: reaper/main.js CACHE_DIR\n');
  process.exit(2);
}
const daemon = await runDaemon({ cache, ...(process.env.KVMTEST_REAPER_IDLE_MS ? { idleMs: Number(process.env.KVMTEST_REAPER_IDLE_MS) } : {}) });
await daemon?.closed;
process.exit(0);
