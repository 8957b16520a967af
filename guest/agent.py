#!/usr/bin/env python3
"""kvmtest guest agent: speaks the KVT1 protocol (docs/PROTOCOL.md) over a virtio-serial port.

Standard library only, Python 3.7+ (it runs on whatever python3 a stock cloud image ships).
Usage: agent.py [--port PATH | --stdio]
"""

import argparse
import collections
import errno
import fcntl
import glob
import json
import os
import platform
import pty
import re
import select
import shlex
import signal
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import termios
import threading
import time
import traceback

# ---- shared with the host: the source is src/agent/shared.ts; test/unit/agent/shared.test.ts checks this copy
VERSION = "0.1.0"  # package.json's version
PROTOCOL = 1
PORT_NAME = "org.kvmtest.agent.0"
MAGIC = b"KVT1"
PREFIX = struct.Struct(">4sII")  # magic, header length, body length
MAX_HEADER = 65536
MAX_BODY = 1 << 20
CHUNK = 256 * 1024  # largest body we emit (output reads, pull data)
CREDIT_WINDOW = 4 << 20  # stdin/push bytes the host may have sent and we not yet acknowledged (`consumed`)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_MESSAGE = 4000  # keeps error/log headers far below MAX_HEADER
ERROR_CODES = ("ENOENT", "EACCES", "ENOTDIR", "EISDIR", "ENOSPC", "EINVAL", "EBADTAR", "EIO", "ETOOMANY", "ETOOBIG")  # every code an error frame may carry
REQUESTS = ("hello", "ping", "identity", "exec", "stdin", "stdin-end", "signal", "resize", "push", "data", "end", "pull", "copy-in")
# ---- end of the shared block

OUTBOX_LIMIT = 64  # queued bulk frames before producers block: a flood slows down, memory stays bounded
ACK_BYTES = 256 * 1024  # acknowledge consumed bytes in batches of this size (or whenever the queue runs dry)
ERRNO_CODES = {errno.ENOENT: "ENOENT", errno.EACCES: "EACCES", errno.EPERM: "EACCES", errno.ENOTDIR: "ENOTDIR",
               errno.EISDIR: "EISDIR", errno.ENOSPC: "ENOSPC", errno.EDQUOT: "ENOSPC"}


def log(message):
    # stderr goes to the journal (port mode) or the test's output (stdio mode), never onto the link
    try:
        sys.stderr.write("kvmtest-agent[%d]: %s\n" % (os.getpid(), message))
        sys.stderr.flush()
    except Exception:
        pass


def spawn(target, name, *args):
    thread = threading.Thread(target=target, name=name, args=args, daemon=True)
    thread.start()
    return thread


def write_all(fd, data):
    view = memoryview(data)
    while view:  # pipes and virtio_console (32 KiB per call) accept partial writes
        view = view[os.write(fd, view):]


class AgentError(Exception):
    """A failure reported to the host as an `error` frame with a stable code."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code, self.message = code, message


class Aborted(Exception):
    """The session ended (host gone or new hello): the work is abandoned silently."""


def to_agent_error(exc, what):
    """Maps an exception to a protocol error; call it from an except block."""
    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, tarfile.TarError):
        return AgentError("EBADTAR", "bad tar stream: %s" % exc)
    if isinstance(exc, OSError):
        return AgentError(ERRNO_CODES.get(exc.errno, "EIO"), "%s: %s" % (exc.filename or what, exc.strerror or exc))
    log(traceback.format_exc())
    return AgentError("EIO", "%s: internal error: %r" % (what, exc))


# ---------------------------------------------------------------- codec

class FrameError(Exception):
    def __init__(self, message, req_id=None):
        Exception.__init__(self, message)
        self.req_id = req_id


def encode(header, body=b""):
    # ensure_ascii keeps undecodable file names (surrogates) valid in the UTF-8 header
    raw = json.dumps(header, separators=(",", ":")).encode("ascii")
    if len(raw) > MAX_HEADER or len(body) > MAX_BODY:
        raise ValueError("frame too large")
    return PREFIX.pack(MAGIC, len(raw), len(body)) + raw + body


class Decoder:
    """Incremental frame parser; never allocates for a length it has not validated."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.buf = bytearray()
        self.skipping = False  # report a run of garbage once, not per byte

    def feed(self, data):
        """Returns the frames ((header, body) tuples) and FrameErrors completed by data, in order."""
        self.buf += data
        out = []
        while len(self.buf) >= PREFIX.size:
            magic, hlen, blen = PREFIX.unpack_from(self.buf)
            if magic != MAGIC or not 2 <= hlen <= MAX_HEADER or blen > MAX_BODY:
                if not self.skipping:
                    out.append(FrameError("corrupt frame (magic %r, header %d, body %d); resynchronising"
                                          % (magic, hlen, blen)))
                self.skipping = True
                i = self.buf.find(MAGIC, 1)  # skip to the next possible frame start
                del self.buf[:i if i > 0 else max(1, len(self.buf) - 3)]
                continue
            end = PREFIX.size + hlen + blen
            if len(self.buf) < end:
                break
            raw, body = bytes(self.buf[PREFIX.size:end - blen]), bytes(self.buf[end - blen:end])
            del self.buf[:end]  # bytearray front deletion is amortised O(1)
            self.skipping = False
            out.append(self.parse_header(raw, body))
        return out

    @staticmethod
    def parse_header(raw, body):
        # the lengths were sound, so a bad header costs only its own frame
        try:
            header = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            return FrameError("header is not UTF-8 JSON: %s" % e)
        except RecursionError:  # `[[[[…]]]]` 64 KiB deep overflows the json module's recursion
            return FrameError("header is nested too deeply")
        rid = header.get("id") if isinstance(header, dict) else None
        if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0:
            return FrameError("header is not an object with a valid id")
        if not isinstance(header.get("t"), str):
            return FrameError("header has no type", rid)
        return header, body


# ---------------------------------------------------------------- queues

class Outbox:
    """FIFO of encoded frames for the writer thread, each stamped with its session generation.

    Bulk frames (stdout/stderr/data) block their producer while OUTBOX_LIMIT of them are queued;
    control frames never wait, so they are behind at most OUTBOX_LIMIT bulk frames. A single FIFO
    keeps per-request order (`exit` after the last `stdout`).
    """

    def __init__(self, limit):
        self.cond = threading.Condition()
        self.items = collections.deque()
        self.limit, self.bulk, self.gen, self.busy = limit, 0, 0, False

    def put(self, gen, frame, bulk):
        with self.cond:
            while bulk and self.bulk >= self.limit and gen == self.gen:
                self.cond.wait()
            if gen != self.gen:
                return False  # the session this frame belongs to is over
            self.items.append((gen, frame, bulk))
            self.bulk += bulk
            self.cond.notify_all()
            return True

    def get(self):
        with self.cond:
            while not self.items:
                self.cond.wait()
            gen, frame, bulk = self.items.popleft()
            self.bulk -= bulk
            self.busy = True
            self.cond.notify_all()
            return frame if gen == self.gen else None

    def written(self):
        with self.cond:
            self.busy = False
            self.cond.notify_all()

    def new_session(self):
        # drops every queued frame and releases producers blocked on the old session
        with self.cond:
            self.gen += 1
            self.items.clear()
            self.bulk = 0
            self.cond.notify_all()

    def drain(self, timeout):
        with self.cond:
            self.cond.wait_for(lambda: not self.items and not self.busy, timeout)


class ByteQueue:
    """Byte FIFO from the reader loop to one consumer thread (process stdin, tar extractor).

    put() never blocks: the reader loop must stay free for every request's frames (a `signal` behind
    a stdin flood to a process that does not read it). The host is paced by credit instead: it keeps
    at most CREDIT_WINDOW bytes unacknowledged, and consumed bytes are acknowledged through
    on_consumed (a `consumed` frame). Bytes nobody will read (consumer gone) are acknowledged at once.
    """

    def __init__(self, on_consumed):
        self.cond = threading.Condition()
        self.chunks = collections.deque()
        self.offset = self.size = 0  # offset: bytes of chunks[0] already consumed
        self.eof = self.dead = False
        self.on_consumed, self.unacked = on_consumed, 0

    def put(self, data):
        """Queues data; False (nothing queued) when it would exceed the host's credit window."""
        with self.cond:
            if self.dead or self.eof:
                dropped = len(data)
            elif self.size + len(data) > CREDIT_WINDOW:
                return False
            else:
                dropped = 0
                if data:
                    self.chunks.append(data)
                    self.size += len(data)
                    self.cond.notify_all()
        if dropped:
            self.on_consumed(dropped)  # the host's window must not stay shut on data we threw away
        return True

    def close(self):
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def abort(self):
        # consumer gone or session over: drop the data, and give the host its credit back for it
        with self.cond:
            dropped, self.unacked = self.size + self.unacked, 0
            self.dead = True
            self.chunks.clear()
            self.size = 0
            self.cond.notify_all()
        if dropped:
            self.on_consumed(dropped)

    def read(self, n=-1, partial=False):
        """Blocks until n bytes (any bytes if partial) or EOF; raises Aborted. Full reads suit tarfile."""
        out = bytearray()
        with self.cond:
            while n < 0 or len(out) < n:
                while not self.chunks and not self.eof and not self.dead:
                    self.cond.wait()
                if self.dead:
                    raise Aborted()
                if not self.chunks:
                    break
                head = self.chunks[0]
                take = len(head) - self.offset if n < 0 else min(n - len(out), len(head) - self.offset)
                out += head[self.offset:self.offset + take]
                self.offset += take
                self.size -= take
                self.unacked += take
                if self.offset == len(head):
                    self.chunks.popleft()
                    self.offset = 0
                self.cond.notify_all()
                if partial:
                    break
            ack = self.unacked if self.unacked >= ACK_BYTES or (self.unacked and not self.size) else 0
            self.unacked -= ack
        if ack:
            self.on_consumed(ack)
        return bytes(out)


# ---------------------------------------------------------------- requests

class Request:
    """Plumbing shared by exec, push and pull: id, session generation, final answer."""

    def __init__(self, agent, gen, rid):
        self.agent, self.gen, self.rid = agent, gen, rid
        self.answered = False

    def send(self, t, body=b"", bulk=False, **fields):
        return self.agent.send(self.gen, self.rid, t, body, bulk, **fields)

    def inbox(self):
        """A ByteQueue for this request's stdin or push data; what it consumes is acknowledged."""
        return ByteQueue(lambda n: self.send("consumed", bytes=n))

    def overflow(self, what):
        # the host broke its credit window: this request alone fails, the link and the others go on
        self.abort()
        self.fail(AgentError("EINVAL", "%s beyond the credit window of %d bytes" % (what, CREDIT_WINDOW)), what)

    def finish(self, t, **fields):
        with self.agent.lock:  # one final answer, even when an overflow and the exit race
            if self.answered:
                return
            self.answered = True
        self.agent.unregister(self.rid, self)  # the id is free before the host sees the answer
        self.send(t, **fields)

    def fail(self, exc, what):
        err = to_agent_error(exc, what)
        self.finish("error", code=err.code, message=err.message[:MAX_MESSAGE])


class Exec(Request):
    """One process tree: stdout/stderr pumps, optional stdin feeder, `exit` after both pipes close."""

    def __init__(self, agent, gen, rid, req):
        Request.__init__(self, agent, gen, rid)
        argv, shell, env, cwd = req.get("argv"), req.get("shell"), req.get("env") or {}, req.get("cwd")
        if isinstance(shell, str):
            argv = ["/bin/sh", "-c", shell]
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise AgentError("EINVAL", "exec needs argv (non-empty string array) or shell (string)")
        if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise AgentError("EINVAL", "env must map names to strings")
        if cwd is not None and not isinstance(cwd, str):
            raise AgentError("EINVAL", "cwd must be a string")
        tty = req.get("tty")
        if tty is not None and not (isinstance(tty, dict) and valid_size(tty.get("rows")) and valid_size(tty.get("cols"))):
            raise AgentError("EINVAL", "tty needs rows and cols (whole numbers from 1 to 65535)")
        self.argv, self.cwd, self.tty = argv, cwd, tty
        self.env = dict(os.environ, PATH=os.environ.get("PATH", DEFAULT_PATH), HOME=os.path.expanduser("~"))
        if tty is not None:
            self.env.setdefault("TERM", "xterm-256color")
        self.env.update(env)
        self.stdin = self.inbox() if req.get("stdin") is True else None
        self.proc, self.done, self.master, self.feeder = None, False, None, None

    def start(self):
        if self.cwd is not None:  # checked first so the error names the cwd, not the command
            try:
                if not stat.S_ISDIR(os.stat(self.cwd).st_mode):
                    raise AgentError("ENOTDIR", "cwd is not a directory: %s" % self.cwd)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    raise AgentError("ENOENT", "cwd not found: %s" % self.cwd)
                raise to_agent_error(e, "cwd")
        slave = None
        try:
            if self.tty is not None:
                # a terminal: the command's stdin, stdout and stderr are one pty; its session leader takes it as controlling tty
                self.master, slave = pty.openpty()
                set_size(self.master, self.tty["rows"], self.tty["cols"])
                self.proc = subprocess.Popen(
                    self.argv, cwd=self.cwd, env=self.env, bufsize=0, close_fds=True,
                    stdin=slave, stdout=slave, stderr=slave, start_new_session=True, preexec_fn=take_ctty)
            else:
                self.proc = subprocess.Popen(
                    self.argv, cwd=self.cwd, env=self.env, bufsize=0, close_fds=True,
                    stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    start_new_session=True)  # own process group: a signal reaches the whole tree
        except OSError as e:
            self._close_master()
            if self.cwd is not None and e.filename == self.cwd:
                raise to_agent_error(e, "cwd")
            if e.errno == errno.ENOENT:
                raise AgentError("ENOENT", "command not found: %s" % self.argv[0])
            if e.errno in (errno.EACCES, errno.EPERM):
                raise AgentError("EACCES", "permission denied: %s" % self.argv[0])
            raise to_agent_error(e, self.argv[0])
        except ValueError as e:  # NUL in an argument, "=" in an env name, ...
            self._close_master()
            raise AgentError("EINVAL", "exec: %s" % e)
        finally:
            if slave is not None:
                os.close(slave)  # the command holds it now: the master reads EOF (EIO) once the command's side closes
        self.send("started", pid=self.proc.pid)
        if self.stdin:
            self.feeder = spawn(self._feed_stdin, "stdin-%d" % self.rid)
        spawn(self._run, "exec-%d" % self.rid)

    def _pump(self, kind, fd):
        try:
            while True:
                try:
                    data = os.read(fd, CHUNK)
                except OSError as e:
                    if e.errno == errno.EIO and self.master == fd:
                        break  # a pty's master: every slave fd is closed
                    raise
                if not data or not self.send(kind, data, bulk=True):
                    break  # EOF, or the session is over and the process is being killed
        except Exception:
            log("exec %d: %s pump failed:\n%s" % (self.rid, kind, traceback.format_exc()))

    def _run(self):
        if self.master is not None:
            self._pump("stdout", self.master)
        else:
            err = spawn(self._pump, "stderr-%d" % self.rid, "stderr", self.proc.stderr.fileno())
            self._pump("stdout", self.proc.stdout.fileno())
            err.join()  # `exit` goes out only after every output byte
            self.proc.stdout.close()
            self.proc.stderr.close()
        rc = self.proc.wait()
        self.done = True
        if self.stdin:
            self.stdin.abort()  # nobody will read it: later stdin frames must never block the reader
        if self.feeder is not None:
            self.feeder.join(5)  # it may be writing to the terminal: close it only after
        self._close_master()
        self.finish("exit", code=rc if rc >= 0 else None, signal=signal_name(-rc) if rc < 0 else None)

    def _feed_stdin(self):
        try:
            while True:
                chunk = self.stdin.read(MAX_BODY, partial=True)
                if not chunk:
                    break
                write_all(self.master if self.master is not None else self.proc.stdin.fileno(), chunk)
        except (Aborted, OSError):
            pass  # EPIPE: the process stopped reading (EIO: the terminal is gone); further stdin is dropped
        finally:
            self.stdin.abort()
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # a terminal stays open: its end is the command's exit

    def resize(self, rows, cols):
        if self.master is not None and not self.done:
            set_size(self.master, rows, cols)  # the kernel sends SIGWINCH to the terminal's foreground group

    def _close_master(self):
        master, self.master = self.master, None
        if master is not None:
            try:
                os.close(master)
            except OSError:
                pass

    def kill(self, sig):
        if self.proc is not None and not self.done:  # once reaped, the group id may be reused
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def abort(self):
        self.kill(signal.SIGKILL)
        if self.stdin:
            self.stdin.abort()


def valid_size(n):
    return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 65535


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def take_ctty():
    """In the child, after setsid: its stdin (the pty) becomes the new session's controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def signal_number(name):
    sig = getattr(signal, name, None) if isinstance(name, str) and name.startswith("SIG") else None
    if not isinstance(sig, signal.Signals):
        raise AgentError("EINVAL", "unknown signal: %r" % (name,))
    return sig


def signal_name(num):
    try:
        return signal.Signals(num).name
    except ValueError:
        return "SIG%d" % num  # e.g. real-time signals


# ---------------------------------------------------------------- push

def inside(root, path):
    return path == root or path.startswith(root.rstrip("/") + "/")


def member_path(name, what="member"):
    """Relative, normalised archive path; refuses absolute names and `..`."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise AgentError("EBADTAR", "unsafe %s name: %s" % (what, name))
    return "/".join(parts)


def clear_path(path, rel):
    # a file or link in the way is replaced, never followed; a real directory is not replaced
    if os.path.isdir(path) and not os.path.islink(path):
        raise AgentError("EISDIR", "a directory is in the way of %s: %s" % (rel, path))
    if os.path.lexists(path):
        os.unlink(path)


def copy_member(tar, member, fd):
    with tar.extractfile(member) as src:
        data = src.read(CHUNK)
        while data:
            write_all(fd, data)
            data = src.read(CHUNK)
    os.fchmod(fd, member.mode & 0o7777)


def flush_fs(path):
    # syncfs() flushes just the destination's filesystem; os.sync() is the fallback
    try:
        import ctypes
        fd = os.open(path, os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except Exception:
        pass
    os.sync()


class Push(Request):
    """Receives a tar stream through a ByteQueue and extracts it in its own thread."""

    def __init__(self, agent, gen, rid, req):
        Request.__init__(self, agent, gen, rid)
        self.dest, self.kind = req.get("dest"), req.get("kind")
        if not isinstance(self.dest, str) or not self.dest.startswith("/"):
            raise AgentError("EINVAL", "push needs an absolute dest")
        if self.kind not in ("file", "dir"):
            raise AgentError("EINVAL", "push kind must be 'file' or 'dir'")
        self.queue = self.inbox()
        self.parents = {}  # archive dir -> real path; cleared whenever a symlink appears

    def start(self):
        spawn(self._run, "push-%d" % self.rid)

    def abort(self):
        self.queue.abort()

    def _run(self):
        try:
            self._extract_dir() if self.kind == "dir" else self._extract_file()
            while self.queue.read(CHUNK):
                pass  # wait for `end`: record padding may follow the end-of-archive blocks
            flush_fs(self.dest if self.kind == "dir" else os.path.dirname(self.dest))  # `done` means on disk
            self.finish("done")
        except Aborted:
            pass
        except Exception as e:
            self.fail(e, "push %s" % self.dest)
        finally:
            self.queue.abort()  # data frames still coming for a failed push are dropped

    def _tar(self):
        return tarfile.open(fileobj=self.queue, mode="r|*", bufsize=CHUNK)

    def _makedirs(self, path):
        try:
            os.makedirs(path, exist_ok=True)
        except FileExistsError:
            raise AgentError("ENOTDIR", "not a directory: %s" % path)

    def _extract_file(self):
        parent = os.path.dirname(self.dest)
        if os.path.isdir(self.dest):
            raise AgentError("EISDIR", "is a directory: %s" % self.dest)
        self._makedirs(parent)
        tmp = None
        try:
            with self._tar() as tar:
                for member in tar:
                    if member.isdir():
                        continue  # e.g. a "./" entry; the member's name is ignored anyway
                    if not member.isreg() or tmp is not None:
                        raise AgentError("EBADTAR", "kind file needs exactly one regular file, got %s" % member.name)
                    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".kvmtest-")
                    try:
                        copy_member(tar, member, fd)
                    finally:
                        os.close(fd)
                    os.utime(tmp, (member.mtime, member.mtime))
            if tmp is None:
                raise AgentError("EBADTAR", "archive holds no regular file")
            os.rename(tmp, self.dest)  # atomic: nobody sees a half-written file
            tmp = None
        finally:
            if tmp is not None:
                os.unlink(tmp)

    def _parent(self, root, rel):
        """Real path of the directory that holds `rel`, created if missing; it must stay inside root."""
        dirname = os.path.dirname(rel)
        if dirname not in self.parents:
            real = os.path.realpath(os.path.join(root, dirname))  # follows links already on disk
            if not inside(root, real):
                raise AgentError("EBADTAR", "%s would be written outside the destination" % rel)
            os.makedirs(real, exist_ok=True)
            self.parents[dirname] = real
        return self.parents[dirname]

    def _extract_dir(self):
        self._makedirs(self.dest)
        root = os.path.realpath(self.dest)
        dirs = []  # directory modes and mtimes are applied last, after their contents
        with self._tar() as tar:
            for member in tar:
                rel = member_path(member.name)
                target = os.path.join(self._parent(root, rel), os.path.basename(rel)) if rel else root
                if member.isdir():
                    if target != root and (os.path.islink(target) or not os.path.isdir(target)):
                        clear_path(target, rel)
                        os.mkdir(target, 0o700)
                        self.parents.clear()
                    dirs.append((target, member))
                elif not rel:
                    raise AgentError("EBADTAR", "non-directory member for the root: %s" % member.name)
                elif member.isreg():
                    clear_path(target, rel)
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                    try:
                        copy_member(tar, member, fd)
                    finally:
                        os.close(fd)
                    os.utime(target, (member.mtime, member.mtime))
                elif member.issym():
                    resolved = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname))
                    if os.path.isabs(member.linkname) or not inside(root, resolved):
                        raise AgentError("EBADTAR", "symlink %s -> %s leaves the destination" % (rel, member.linkname))
                    clear_path(target, rel)
                    os.symlink(member.linkname, target)
                    self.parents.clear()  # a new link can change where later names resolve
                elif member.islnk():
                    source = os.path.realpath(os.path.join(root, member_path(member.linkname, "link target")))
                    if not inside(root, source) or not os.path.isfile(source):
                        raise AgentError("EBADTAR", "hard link %s -> %s: no target in the destination" % (rel, member.linkname))
                    clear_path(target, rel)
                    os.link(source, target)
                else:
                    raise AgentError("EBADTAR", "device, fifo or other special member refused: %s" % rel)
        for path, member in reversed(dirs):
            os.chmod(path, member.mode & 0o7777)
            os.utime(path, (member.mtime, member.mtime))


# ---------------------------------------------------------------- pull

class FrameWriter:
    """File-like sink for tarfile that emits `data` frames of at most CHUNK bytes."""

    def __init__(self, pull):
        self.pull, self.buf = pull, bytearray()

    def write(self, data):
        self.buf += data
        while len(self.buf) >= CHUNK:
            self.emit(bytes(self.buf[:CHUNK]))
            del self.buf[:CHUNK]
        return len(data)

    def emit(self, chunk):
        if chunk and (self.pull.aborted or not self.pull.send("data", chunk, bulk=True)):
            raise Aborted()


class CopyIn(Request):
    """Copies in what the host attached as a disk (a bulk push): a read-only ext2 image of a tree,
    mounted and copied into dest; or a file attached as itself, of which `bytes` are copied. The disk
    is the virtio-scsi target `target` on the controller present from boot; unmounted before `done`,
    so the host can detach it."""

    DEVICE_TIMEOUT = 30.0

    def __init__(self, agent, gen, rid, req):
        Request.__init__(self, agent, gen, rid)
        self.target, self.kind, self.dest, self.size = req.get("target"), req.get("kind"), req.get("dest"), req.get("bytes")
        self.mode = req.get("mode", 0o644)
        self.view = req.get("view") is True
        self.writable = req.get("writable") is True
        if not (type(self.mode) is int and 0 <= self.mode <= 0o7777):
            raise AgentError("EINVAL", "copy-in mode must be permission bits")
        if not (type(self.target) is int and 1 <= self.target <= 255):  # bool is an int in Python: not a target
            raise AgentError("EINVAL", "copy-in needs a target from 1 to 255")
        if not isinstance(self.dest, str) or not self.dest.startswith("/"):
            raise AgentError("EINVAL", "copy-in needs an absolute dest")
        if self.kind not in ("file", "dir"):
            raise AgentError("EINVAL", "copy-in kind must be 'file' or 'dir'")
        if self.kind == "file" and not (type(self.size) is int and self.size >= 0):
            raise AgentError("EINVAL", "copy-in of a file needs its bytes")
        self.proc = None
        self.aborted = False

    def start(self):
        spawn(self._run, "copy-in-%d" % self.rid)

    def abort(self):
        self.aborted = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def cancel(self):
        """The host gave up (`end` on its id) and detaches the disk: stop copying; the error answer goes nowhere."""
        self.abort()

    def _device(self):
        if shutil_which("modprobe"):  # udev loads it on the first SCSI disk; not every guest runs udev
            subprocess.call(["modprobe", "-q", "sd_mod"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started, rescanned = time.monotonic(), False
        while not self.aborted:
            hosts = glob.glob("/sys/bus/virtio/drivers/virtio_scsi/virtio*/host*")
            for host in hosts:
                n = os.path.basename(host)[4:]
                for block in glob.glob("%s/target%s:0:%d/%s:0:%d:0/block/*" % (host, n, self.target, n, self.target)):
                    dev = "/dev/" + os.path.basename(block)
                    if os.path.exists(dev):
                        return dev
            elapsed = time.monotonic() - started
            if elapsed > 2 and not rescanned:
                rescanned = True  # a hot-plug event missed: ask each virtio-scsi host for the target
                for host in hosts:
                    try:
                        with open("/sys/class/scsi_host/%s/scan" % os.path.basename(host), "w") as f:
                            f.write("0 %d 0" % self.target)
                    except OSError:
                        pass
            if elapsed > self.DEVICE_TIMEOUT:
                raise AgentError("EIO", "the disk the host attached (scsi target %d) did not appear in %d s" % (self.target, self.DEVICE_TIMEOUT))
            time.sleep(0.05)
        raise AgentError("EIO", "copy-in aborted")

    def _run(self):
        try:
            dev = self._device()
            if self.kind == "file":
                self._copy_file(dev)
                flush_fs(os.path.dirname(self.dest))
            elif self.view and self.writable:
                self._mount_overlay(dev)
            elif self.view:
                os.makedirs(self.dest, exist_ok=True)
                self._call(["mount", "-t", "ext2", "-o", "ro,nodev,nosuid", dev, self.dest], "mount")
            else:
                self._copy_tree(dev)
                flush_fs(self.dest)
            self.finish("done")
        except Exception as e:
            self.fail(e, "copy-in %s" % self.dest)

    def _mount_overlay(self, dev):
        # the image read-only underneath, the guest's writes in an upper dir on its own disk (overlayfs)
        top = "/var/lib/kvmtest/views"
        os.makedirs(top, exist_ok=True)
        base = tempfile.mkdtemp(prefix="view-", dir=top)
        lower, upper, work = (os.path.join(base, d) for d in ("lower", "upper", "work"))
        for d in (lower, upper, work):
            os.mkdir(d)
        os.makedirs(self.dest, exist_ok=True)
        self._call(["mount", "-t", "ext2", "-o", "ro,nodev,nosuid", dev, lower], "mount")
        try:
            self._call(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work), self.dest], "mount the overlay")
        except AgentError:
            self._call(["umount", lower], "umount", always=True)
            raise

    def _copy_file(self, dev):
        parent = os.path.dirname(self.dest)
        if os.path.isdir(self.dest):
            raise AgentError("EISDIR", "is a directory: %s" % self.dest)
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".kvmtest-")
        try:
            with open(dev, "rb", buffering=0) as src:
                left = self.size
                while left > 0 and not self.aborted:
                    data = src.read(min(left, 4 * 1024 * 1024))
                    if not data:
                        raise AgentError("EIO", "the attached disk ended %d bytes early" % left)
                    write_all(fd, data)
                    left -= len(data)
            os.close(fd)
            fd = None
            os.chmod(tmp, self.mode)
            os.rename(tmp, self.dest)  # atomic, as a streamed push
            tmp = None
        finally:
            if fd is not None:
                os.close(fd)
            if tmp is not None:
                os.unlink(tmp)

    def _copy_tree(self, dev):
        if os.path.lexists(self.dest) and not os.path.isdir(self.dest):
            raise AgentError("ENOTDIR", "not a directory: %s" % self.dest)
        os.makedirs(self.dest, exist_ok=True)
        mnt = tempfile.mkdtemp(prefix="kvmtest-copy-in-")
        try:
            self._call(["mount", "-t", "ext2", "-o", "ro,nodev,nosuid,noexec", dev, mnt], "mount")
            try:
                # a copy, not a view: the files are the guest's, root's, with their modes, links and hard links
                self._call(["cp", "-a", "--no-preserve=ownership", mnt + "/.", self.dest], "copy")
            finally:
                self._call(["umount", mnt], "umount", always=True)  # an aborted copy still lets go of the disk
        finally:
            os.rmdir(mnt)

    def _call(self, argv, what, always=False):
        if self.aborted and not always:
            raise AgentError("EIO", "copy-in aborted")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = self.proc.communicate()
        code, self.proc = self.proc.returncode, None
        if code != 0:
            text = err.decode("utf-8", "replace").strip()
            raise AgentError("ENOSPC" if "No space left" in text else "EIO", "%s failed (%d): %s" % (what, code, text[-1000:]))


def shutil_which(name):
    for d in os.environ.get("PATH", DEFAULT_PATH).split(":") + ["/sbin", "/usr/sbin"]:
        if os.access(os.path.join(d, name), os.X_OK):
            return True
    return False


class Pull(Request):
    """Streams a file, or a directory's contents, as a pax tar; stops itself at the host's caps."""

    def __init__(self, agent, gen, rid, req):
        Request.__init__(self, agent, gen, rid)
        self.path, self.aborted, self.file = req.get("path"), False, None
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise AgentError("EINVAL", "pull needs an absolute path")
        self.max_entries, self.max_bytes = pull_cap(req, "maxEntries"), pull_cap(req, "maxBytes")

    def start(self):
        try:  # most failures (missing path, no permission) are answered before pull-start
            st = os.stat(self.path)
            if stat.S_ISREG(st.st_mode):
                self.file = open(self.path, "rb")
                self._check_bytes(tar_bytes(st.st_size))
            elif not stat.S_ISDIR(st.st_mode):
                raise AgentError("EINVAL", "not a regular file or directory: %s" % self.path)
        except OSError as e:
            self.close_file()
            raise to_agent_error(e, self.path)
        except AgentError:
            self.close_file()
            raise
        spawn(self._run, "pull-%d" % self.rid)

    def abort(self):
        self.aborted = True

    def cancel(self):
        """The host gave up on this pull (`end` on its id): stop at the next member or chunk, answer nothing."""
        self.aborted = True
        self.agent.unregister(self.rid, self)

    def close_file(self):
        if self.file:
            self.file.close()

    def _run(self):
        try:
            if not self.file and (self.max_entries is not None or self.max_bytes is not None):
                self._count_tree()  # over a cap: refused before any data, the walk read at most maxEntries + 1 names
            self.send("pull-start", kind="file" if self.file else "dir")
            writer = FrameWriter(self)
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tar:
                if self.file:
                    tar.addfile(tar.gettarinfo(arcname=os.path.basename(self.path), fileobj=self.file), self.file)
                else:
                    self._add_tree(tar)
            writer.emit(bytes(writer.buf))
            self.finish("end")
        except Aborted:
            self.agent.unregister(self.rid, self)
        except Exception as e:  # after some data: the host discards the partial stream
            self.fail(e, "pull %s" % self.path)
        finally:
            self.close_file()

    def _check_bytes(self, total):
        if self.max_bytes is not None and total > self.max_bytes:
            raise AgentError("ETOOBIG", "pull %s: more than %d bytes (maxBytes)" % (self.path, self.max_bytes))

    def _count_tree(self):
        total = 0
        for _, full, kind in walk_tree(self.path, self.max_entries, self):
            if kind == "file" and self.max_bytes is not None:
                try:
                    total += tar_bytes(os.lstat(full).st_size)
                except FileNotFoundError:
                    continue  # gone since the listing: the stream will not hold it either
            else:
                total += 512
            self._check_bytes(total)

    def _add_tree(self, tar):
        total = 0
        for arcname, full, _ in walk_tree(self.path, self.max_entries, self, quiet=False):
            info = tar.gettarinfo(full, arcname=arcname)  # lstat: links stay links
            if info is None or not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
                log("pull %d: skipping special file %s" % (self.rid, full))
                continue  # sockets, fifos, devices: a push would refuse them too
            total += tar_bytes(info.size) if info.isreg() else 512
            self._check_bytes(total)  # the tree may have grown since it was counted
            if info.isreg():
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def pull_cap(req, name):
    value = req.get(name)
    if value is not None and not (type(value) is int and value > 0):  # bool is an int in Python: not a cap
        raise AgentError("EINVAL", "pull %s must be a positive integer" % name)
    return value


def tar_bytes(size):
    """What a regular file costs in a tar stream: a header block and its data in whole blocks (pax extensions aside)."""
    return 512 + (size + 511) // 512 * 512


def entry_kind(entry):
    """A directory entry's kind without following it (d_type, an lstat where the file system has none); None: special."""
    if entry.is_symlink():
        return "link"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    if entry.is_file(follow_symlinks=False):
        return "file"
    return None


def list_dir(path, room, pull, quiet):
    """One directory's names and kinds, sorted; at most `room` of them are read (ETOOMANY beyond it)."""
    out = []
    with os.scandir(path) as entries:
        for entry in entries:
            kind = entry_kind(entry)
            if kind is None:
                if not quiet:
                    log("pull %d: skipping special file %s" % (pull.rid, entry.path))
                continue
            if room is not None and len(out) >= room:
                raise AgentError("ETOOMANY", "pull %s: more than %d entries (maxEntries)" % (pull.path, pull.max_entries))
            if pull.aborted:
                raise Aborted()
            out.append((entry.name, kind))
    out.sort()
    return out


def walk_tree(root, max_entries, pull, quiet=True):
    """Yields (arcname, path, kind) of a tree's members, one directory listed at a time: each directory's
    entries in name order, then its subdirectories in that order (os.walk's order); the root is followed
    if it is a link, nothing under it is. ETOOMANY as soon as more than max_entries names were read."""
    count, stack = 0, [("", root)]
    while stack:
        rel, top = stack.pop()
        names = list_dir(top, None if max_entries is None else max_entries - count, pull, quiet)
        count += len(names)
        subdirs = []
        for name, kind in names:
            arcname, full = rel + name, os.path.join(top, name)
            yield arcname, full, kind
            if kind == "dir":
                subdirs.append((arcname + "/", full))
        stack.extend(reversed(subdirs))


# ---------------------------------------------------------------- agent

RNDADDENTROPY = 0x40085203  # _IOW('R', 0x03, int[2])
RNDRESEEDCRNG = 0x5207      # _IO('R', 0x07), Linux 4.17+


def reseed(seed):
    """Mixes host entropy into the kernel pool (credited) and forces the CRNG to reseed from it now."""
    import fcntl
    with open("/dev/urandom", "wb", buffering=0) as f:
        try:
            fcntl.ioctl(f, RNDADDENTROPY, struct.pack("ii", len(seed) * 8, len(seed)) + seed)
        except OSError:
            f.write(seed)  # not root: mixed in, not credited
        try:
            fcntl.ioctl(f, RNDRESEEDCRNG)
        except OSError:
            pass  # older kernels reseed on their own schedule


SSH_HOST_KEYS_LIST = "/var/lib/kvmtest/ssh-host-keys"  # the snapshot template's key files, removed before its save
SSH_HOST_KEY = re.compile(r"^ssh_host_(rsa|ecdsa|ed25519|dsa)_key$")


def restart_sshd():
    try:  # a running sshd holds the template's keys in memory
        subprocess.run(["systemctl", "try-restart", "ssh.service", "sshd.service"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, PATH=DEFAULT_PATH))
    except OSError:
        pass  # no systemd: nothing restarts sshd for us


def regenerate_host_keys(listing=SSH_HOST_KEYS_LIST, ssh_dir="/etc/ssh", restart=restart_sshd):
    """Makes the clone its own SSH host keys, of the types the template had and of those present now
    (a checkpoint captures keys the guest made after its template); returns their file names."""
    try:
        with open(listing) as f:
            names = [n for n in f.read().split() if SSH_HOST_KEY.match(n)]
    except FileNotFoundError:
        names = []  # the template had none (or no sshd)
    try:
        names += sorted(n for n in os.listdir(ssh_dir) if SSH_HOST_KEY.match(n) and n not in names)
    except OSError:
        pass  # no /etc/ssh: nothing to share, nothing to make
    for name in names:
        path = os.path.join(ssh_dir, name)
        for old in (path, path + ".pub"):
            if os.path.lexists(old):
                os.unlink(old)
        done = subprocess.run(["ssh-keygen", "-q", "-t", SSH_HOST_KEY.match(name).group(1), "-N", "", "-f", path],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=dict(os.environ, PATH=DEFAULT_PATH))
        if done.returncode != 0:
            raise AgentError("EIO", "ssh-keygen for %s failed: %s" % (name, done.stdout.decode("utf-8", "replace")[-500:]))
    if names:
        restart()
    return names


def write_text(path, text):
    """Replaces a file atomically (a symlinked /etc/machine-id is replaced, not written through)."""
    tmp = "%s.kvmtest-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o444 if path.endswith("machine-id") else 0o644)
    os.rename(tmp, path)


def os_release():
    values, text = {}, ""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            break
        except OSError:
            pass
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            try:
                values[key] = " ".join(shlex.split(value))  # values are shell-quoted
            except ValueError:
                values[key] = value.strip("\"'")
    return {"id": values.get("ID"), "versionId": values.get("VERSION_ID"), "prettyName": values.get("PRETTY_NAME")}


class Link:
    """The byte transport: one fd for the virtio port, or stdin/stdout."""

    def __init__(self, rfd, wfd):
        self.rfd, self.wfd, self.failing = rfd, wfd, False
        self.buf = memoryview(bytearray(CHUNK))  # reused: polling a disconnected port allocates nothing

    def read(self):
        """Bytes from the host; b"" means EOF (on the port: host not connected)."""
        try:
            data = bytes(self.buf[:os.readv(self.rfd, [self.buf])])
            self.failing = False
            return data
        except OSError as e:  # e.g. EIO from a hung-up tty given with --port: same as EOF
            if not self.failing:
                log("read error: %s" % e)
            self.failing = True
            return b""

    def write(self, data):
        write_all(self.wfd, data)  # on the port this blocks while the host is away

    def hung_up(self):
        """True while nobody is on the other side (the virtio port reports POLLHUP)."""
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN)
        return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in poller.poll(0))


class Agent:
    def __init__(self, link, stdio):
        self.link, self.stdio = link, stdio
        self.outbox = Outbox(OUTBOX_LIMIT)
        self.decoder = Decoder()
        self.lock = threading.Lock()
        self.requests = {}  # id -> Exec/Push/Pull of the current session
        self.identity_applied = None  # the machine-id of the identity the last hello applied

    def send(self, gen, rid, t, body=b"", bulk=False, **fields):
        header = {"t": t, "id": rid}
        header.update(fields)
        return self.outbox.put(gen, encode(header, body), bulk)

    def _writer(self):
        while True:
            frame = self.outbox.get()
            try:
                if frame is not None:
                    self.link.write(frame)
            except OSError as e:
                log("write error: %s" % e)
                time.sleep(0.1)  # e.g. EPIPE on stdout: don't spin
            finally:
                self.outbox.written()

    def register(self, rid, obj):
        with self.lock:
            if rid in self.requests:
                raise AgentError("EINVAL", "request id %d is already in use" % rid)
            self.requests[rid] = obj

    def unregister(self, rid, obj):
        with self.lock:
            if self.requests.get(rid) is obj:
                del self.requests[rid]

    def lookup(self, rid, cls):
        with self.lock:
            obj = self.requests.get(rid)
        return obj if isinstance(obj, cls) else None

    def abort_all(self):
        with self.lock:
            old, self.requests = self.requests, {}
        for obj in old.values():
            obj.abort()  # SIGKILL to exec process groups, transfers abandoned
        return len(old)

    def new_session(self, why):
        count = self.abort_all()
        self.outbox.new_session()  # queued frames of the old session are dropped
        if count:
            log("%s: abandoned %d request(s)" % (why, count))

    def dispatch(self, header, body):
        t, rid, gen = header["t"], header["id"], self.outbox.gen
        try:
            if t not in REQUESTS:
                raise AgentError("EINVAL", "unknown request type: %s" % t)
            if t in ("exec", "push", "pull", "copy-in"):
                return self._start(gen, rid, {"exec": Exec, "push": Push, "pull": Pull, "copy-in": CopyIn}[t], header)
            getattr(self, "on_" + t.replace("-", "_"))(gen, rid, header, body)
        except Exception as e:
            err = to_agent_error(e, t)
            self.send(gen, rid, "error", code=err.code, message=err.message[:MAX_MESSAGE])

    def _start(self, gen, rid, cls, req):
        if rid == 0:
            raise AgentError("EINVAL", "id 0 is reserved for the link")
        obj = cls(self, gen, rid, req)
        self.register(rid, obj)
        try:
            obj.start()
        except BaseException:
            self.unregister(rid, obj)
            raise

    def on_hello(self, gen, rid, req, body):
        self.new_session("new hello")  # a hello always starts a session, even if no EOF was seen
        extra = {}
        identity = req.get("identity")
        if isinstance(identity, dict):
            # a restored clone's first hello carries its identity: applied before the answer, once
            # (the host repeats its hello until answered; the machine-id names the identity)
            key = identity.get("machineId")
            try:
                if key != self.identity_applied:
                    self.apply_identity(identity, body)
                    self.identity_applied = key
                extra["identity"] = "applied"
            except Exception as e:
                err = to_agent_error(e, "identity")
                extra["identityError"] = ("%s: %s" % (err.code, err.message))[:MAX_MESSAGE]
        uname = os.uname()
        self.send(self.outbox.gen, rid, "hello", nonce=req.get("nonce"), protocol=PROTOCOL, version=VERSION,
                  os=os_release(), kernel=platform.release() or uname.release,
                  arch=platform.machine() or uname.machine, hostname=socket.gethostname(), pid=os.getpid(), **extra)

    def on_ping(self, gen, rid, req, body):
        self.send(gen, rid, "pong")

    def on_identity(self, gen, rid, req, body):
        """The identity as a request of its own (older hosts; the host now sends it with its hello)."""
        self.apply_identity(req, body)
        self.send(gen, rid, "done")

    def apply_identity(self, req, body):
        """Makes a clone restored from a snapshot its own machine: entropy, clock, hostname, machine-id, SSH host keys."""
        if body:
            reseed(body)
        if isinstance(req.get("timeMs"), (int, float)):
            time.clock_settime(time.CLOCK_REALTIME, req["timeMs"] / 1000.0)
        hostname = req.get("hostname")
        if isinstance(hostname, str) and hostname:
            with open("/proc/sys/kernel/hostname", "w") as f:
                f.write(hostname)
            write_text("/etc/hostname", hostname + "\n")
        machine_id = req.get("machineId")
        if isinstance(machine_id, str) and len(machine_id) == 32:
            write_text("/etc/machine-id", machine_id + "\n")
        regenerate_host_keys()

    # stream frames for a finished or unknown request are dropped: they may cross its answer
    def on_stdin(self, gen, rid, req, body):
        proc = self.lookup(rid, Exec)
        if proc and proc.stdin and not proc.stdin.put(body):
            proc.overflow("stdin")

    def on_stdin_end(self, gen, rid, req, body):
        proc = self.lookup(rid, Exec)
        if proc and proc.stdin:
            proc.stdin.close()

    def on_signal(self, gen, rid, req, body):
        proc = self.lookup(rid, Exec)
        try:
            sig = signal_number(req.get("signal"))
        except AgentError as e:  # an error frame would end the exec on the host: warn instead
            log("exec %d: %s" % (rid, e.message))
            return self.send(gen, 0, "log", level="warn", message="exec %d: %s" % (rid, e.message[:MAX_MESSAGE]))
        if proc:
            proc.kill(sig)

    def on_resize(self, gen, rid, req, body):
        proc = self.lookup(rid, Exec)
        rows, cols = req.get("rows"), req.get("cols")
        if not (valid_size(rows) and valid_size(cols)):  # like a bad signal: a warning, not the exec's end
            return self.send(gen, 0, "log", level="warn", message="exec %d: resize needs rows and cols from 1 to 65535" % rid)
        if proc:
            proc.resize(rows, cols)

    def on_data(self, gen, rid, req, body):
        push = self.lookup(rid, Push)
        if push and not push.queue.put(body):
            push.overflow("push data")

    def on_end(self, gen, rid, req, body):
        push = self.lookup(rid, Push)
        if push:
            push.queue.close()
        stopped = self.lookup(rid, Pull) or self.lookup(rid, CopyIn)  # the host gave up on it
        if stopped:
            stopped.cancel()

    def received(self, item):
        """One decoded frame or FrameError; whatever a frame holds, the loop goes on to the next."""
        try:
            if not isinstance(item, FrameError):
                return self.dispatch(*item)
            log("malformed frame: %s" % item)
            message = ("malformed frame: %s" % item)[:MAX_MESSAGE]
            if item.req_id is not None:
                self.send(self.outbox.gen, item.req_id, "error", code="EINVAL", message=message)
            else:  # no id to answer on: tell the link
                self.send(self.outbox.gen, 0, "log", level="warn", message=message)
        except Exception:
            log("frame handling failed:\n%s" % traceback.format_exc())

    def run(self):
        spawn(self._writer, "writer")
        connected = False
        while True:
            data = self.link.read()
            if data:
                connected = True
                for item in self.decoder.feed(data):
                    self.received(item)
            elif self.stdio:  # EOF on stdin ends the agent
                self.abort_all()
                self.outbox.drain(1.0)
                return
            else:
                time.sleep(0.1)  # the port returns EOF at once until the host is back: poll slowly
                # virtio_console learns of host open/close on a control queue handled apart from the
                # data, so an EOF can show up just after the next session's first bytes; only a
                # hang-up that is still there now ends the session (a quick reconnect is caught by hello)
                if connected and self.link.hung_up():
                    connected = False
                    log("host disconnected")
                    self.new_session("disconnect")
                    self.decoder.reset()


def find_port():
    direct = "/dev/virtio-ports/" + PORT_NAME
    if os.path.exists(direct):
        return direct
    for name_file in sorted(glob.glob("/sys/class/virtio-ports/*/name")):
        try:
            with open(name_file) as f:
                dev = "/dev/" + os.path.basename(os.path.dirname(name_file))
                if f.read().strip() == PORT_NAME and os.path.exists(dev):
                    return dev
        except OSError:
            pass
    return None


def open_port(path):
    logged = None
    while True:
        target = path or find_port()
        try:
            if target:
                return os.open(target, os.O_RDWR | os.O_CLOEXEC), target
            why = "waiting for virtio port %s" % PORT_NAME
        except OSError as e:  # not there yet, or EBUSY while another agent holds it
            why = "cannot open %s: %s" % (target, e)
        if why != logged:
            log(why)
            logged = why
        time.sleep(0.2)


def main(argv=None):
    parser = argparse.ArgumentParser(description="kvmtest guest agent")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--port", help="character device to use instead of the virtio port")
    group.add_argument("--stdio", action="store_true", help="speak the protocol on stdin/stdout")
    args = parser.parse_args(argv)
    if args.stdio:
        wfd = os.dup(1)
        os.dup2(2, 1)  # stray prints must not corrupt the frame stream
        sys.stdout = sys.stderr
        link = Link(0, wfd)
    else:
        fd, path = open_port(args.port)
        log("agent %s listening on %s" % (VERSION, path))
        link = Link(fd, fd)
    agent = Agent(link, args.stdio)

    def terminate(signum, frame):
        for obj in list(agent.requests.values()):  # no locks here: the main thread may hold them
            if isinstance(obj, Exec):
                obj.kill(signal.SIGKILL)  # children live in their own sessions; don't leave them behind
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    agent.run()
    sys.stderr.flush()
    os._exit(0)  # daemon threads may sit in blocking reads; leave without joining them


if __name__ == "__main__":
    main()
