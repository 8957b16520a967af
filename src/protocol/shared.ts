/**
 * The one source of the values the host and the guest agent must agree on. guest/agent.py runs
 * alone in the guest as one file, so it holds a copy in its block marked "shared with the host";
 * test/unit/agent/shared.test.ts loads the agent and fails when any copy differs from this file.
 */
export const PROTOCOL_VERSION = 1;
/** The virtio-serial port's name: QEMU's -device virtserialport name=…, /dev/virtio-ports/… in the guest. */
export const PORT_NAME = 'org.kvmtest.agent.0';
/** First four bytes of every frame. */
export const MAGIC_TEXT = 'KVT1';
/** Magic, header length, body length: 4 + 4 + 4 bytes. */
export const PRELUDE_BYTES = 12;
export const MAX_HEADER_BYTES = 64 * 1024;
export const MAX_BODY_BYTES = 1024 * 1024;
/** Chunk size for streamed data both ways (stdin and push from the host, output and pull from the agent): well under MAX_BODY_BYTES. */
export const CHUNK_BYTES = 256 * 1024;
/**
 * Credit for stdin and push data: the host keeps at most this many bytes per request sent and not yet
 * acknowledged by a `consumed` frame, so the agent never has to stop reading the link (no head-of-line blocking).
 */
export const CREDIT_WINDOW_BYTES = 4 * 1024 * 1024;
/** PATH for commands in the guest when the agent's own environment has none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** The agent cuts its error and log messages to this many characters (the host accepts up to validate.ts's MAX_MESSAGE_CHARS). */
export const AGENT_MESSAGE_CHARS = 4000;
/** Codes of the agent's `error` frames: errno-like, stable; ETOOMANY and ETOOBIG: a pull over the host's maxEntries or maxBytes. */
export const AGENT_ERROR_CODES = ['ENOENT', 'EACCES', 'ENOTDIR', 'EISDIR', 'ENOSPC', 'EINVAL', 'EBADTAR', 'EIO', 'ETOOMANY', 'ETOOBIG'] as const;
/** Frame types the host sends and the agent serves. */
export const HOST_FRAME_TYPES = ['hello', 'ping', 'identity', 'exec', 'stdin', 'stdin-end', 'signal', 'resize', 'push', 'data', 'end', 'pull', 'copy-in'] as const;
