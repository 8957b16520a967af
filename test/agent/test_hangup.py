"""Hang-up handling: when the host goes away mid-request (EOF on stdio, a hung-up virtio port) or a
new hello starts a new session, the agent kills what the old session started (whole process groups),
abandons its transfers, drops its queued frames, and serves the next session from a clean decoder."""

import os
import queue
import shutil
import tarfile
import tempfile
import threading
import time
import unittest

from harness import Harness, agent


def gone(pid, timeout=10):
    """True once pid has exited (a zombie counts: it was killed, its parent reaps it later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except (FileNotFoundError, ProcessLookupError):
            # reaped between open() and read(): /proc answers ESRCH on the read
            return True
        time.sleep(0.05)
    return False


def start_tree(send, expect, rid):
    """Starts `sh` with a background sleep (a grandchild in the same process group); returns both pids."""
    send({"t": "exec", "id": rid, "argv": ["sh", "-c", "sleep 1000 & echo $!; wait"], "stdin": False})
    started, _ = expect(lambda h: h["t"] == "started" and h["id"] == rid)
    _, out = expect(lambda h: h["t"] == "stdout" and h["id"] == rid)
    return started["pid"], int(out.strip())


def drain(frames, seconds):
    """Frames that arrive within `seconds`."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            item = frames.get(timeout=0.05)
        except queue.Empty:
            continue
        if isinstance(item, tuple):
            seen.append(item[0])
    return seen


class StdioEofTest(unittest.TestCase):
    def setUp(self):
        self.h = Harness()
        self.top = tempfile.mkdtemp(prefix="kvmtest-agent-test-")

    def tearDown(self):
        self.h.agent.abort_all()
        shutil.rmtree(self.top)

    def hang_up(self):
        os.close(self.h.host_w)  # the host end closes mid-request
        self.h.loop.join(10)
        self.assertFalse(self.h.loop.is_alive(), "the agent did not end on EOF")

    def test_eof_kills_the_process_groups_of_running_execs(self):
        shell, sleeper = start_tree(self.h.send, self.h.expect, 1)
        other, _ = start_tree(self.h.send, self.h.expect, 2)
        self.hang_up()
        for pid in (shell, sleeper, other):
            self.assertTrue(gone(pid), "pid %d survived the hang-up" % pid)

    def test_eof_mid_push_abandons_it_and_leaves_no_partial_file(self):
        info = tarfile.TarInfo("big")
        info.size = 1 << 20
        dest = os.path.join(self.top, "big")
        self.h.send({"t": "push", "id": 3, "dest": dest, "kind": "file"})
        self.h.send({"t": "data", "id": 3}, info.tobuf(tarfile.PAX_FORMAT) + b"x" * 1000)
        self.h.send({"t": "ping", "id": 4})
        self.h.expect(lambda h: h["t"] == "pong")
        self.hang_up()
        deadline = time.monotonic() + 10
        while os.listdir(self.top) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(os.listdir(self.top), [])


class NewHelloTest(unittest.TestCase):
    def setUp(self):
        self.h = Harness()

    def tearDown(self):
        self.h.close()

    def test_a_new_hello_kills_the_old_session_and_drops_its_frames(self):
        shell, sleeper = start_tree(self.h.send, self.h.expect, 1)
        self.h.send({"t": "hello", "id": 0, "nonce": "second"})
        hello, _ = self.h.expect(lambda h: h["t"] == "hello")
        self.assertEqual(hello["nonce"], "second")
        self.assertTrue(gone(shell) and gone(sleeper))
        late = [h for h in drain(self.h.frames, 0.5) if h["id"] == 1]
        self.assertEqual(late, [], "a frame of the old session crossed the new hello")
        self.h.send({"t": "exec", "id": 1, "argv": ["true"], "stdin": False})  # the old ids are free again
        exit_, _ = self.h.expect(lambda h: h["id"] == 1 and h["t"] in ("exit", "error"))
        self.assertEqual((exit_["t"], exit_["code"]), ("exit", 0))


class FakePort:
    """A virtio port as the agent sees it: reads return what the test queues; b"" is EOF; hung_up is set by the test."""

    def __init__(self):
        self.incoming = queue.Queue()
        self.hup = False
        self.frames = queue.Queue()
        self.decoder = agent.Decoder()
        self.lock = threading.Lock()

    def read(self):
        return self.incoming.get()

    def write(self, data):
        with self.lock:
            for item in self.decoder.feed(data):
                self.frames.put(item)

    def hung_up(self):
        return self.hup

    def send(self, header, body=b""):
        self.incoming.put(agent.encode(header, body))

    def expect(self, match, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self.frames.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, tuple) and match(item[0]):
                return item
        raise AssertionError("no matching frame from the agent within %d s" % timeout)


class PortHangUpTest(unittest.TestCase):
    def setUp(self):
        self.port = FakePort()
        self.agent = agent.Agent(self.port, stdio=False)
        threading.Thread(target=self.agent.run, daemon=True).start()  # port mode never ends: a daemon
        self.port.send({"t": "hello", "id": 0, "nonce": "first"})
        self.port.expect(lambda h: h["t"] == "hello" and h["nonce"] == "first")

    def tearDown(self):
        self.agent.abort_all()

    def test_a_hang_up_mid_request_kills_the_session_and_a_half_frame_does_not_reach_the_next(self):
        shell, sleeper = start_tree(self.port.send, self.port.expect, 1)
        self.port.incoming.put(agent.encode({"t": "stdin", "id": 2}, b"x" * 4096)[:20])  # the host vanished mid-frame
        self.port.hup = True
        self.port.incoming.put(b"")
        self.assertTrue(gone(shell) and gone(sleeper), "the session's processes survived the hang-up")
        self.port.hup = False
        self.port.send({"t": "hello", "id": 0, "nonce": "second"})
        self.port.expect(lambda h: h["t"] == "hello" and h["nonce"] == "second")
        self.port.send({"t": "ping", "id": 3})
        self.port.expect(lambda h: h["t"] == "pong" and h["id"] == 3)
        self.assertEqual([h for h in drain(self.port.frames, 0.3) if h["id"] in (1, 2)], [])

    def test_an_eof_while_the_port_is_not_hung_up_keeps_the_session(self):
        shell, _ = start_tree(self.port.send, self.port.expect, 4)
        self.port.incoming.put(b"")  # virtio_console may report EOF just before the host's reconnect
        time.sleep(0.3)
        self.port.send({"t": "ping", "id": 5})
        self.port.expect(lambda h: h["t"] == "pong" and h["id"] == 5)
        self.assertFalse(gone(shell, timeout=0.2))
        self.port.send({"t": "signal", "id": 4, "signal": "SIGKILL"})
        exit_, _ = self.port.expect(lambda h: h["id"] == 4 and h["t"] == "exit")
        self.assertEqual(exit_["signal"], "SIGKILL")


class OutboxTest(unittest.TestCase):
    def test_a_new_session_releases_producers_blocked_on_a_full_outbox_and_drops_their_frames(self):
        box = agent.Outbox(1)
        gen = box.gen
        self.assertTrue(box.put(gen, b"first", True))
        result = []
        blocked = threading.Thread(target=lambda: result.append(box.put(gen, b"second", True)), daemon=True)
        blocked.start()
        blocked.join(0.2)
        self.assertTrue(blocked.is_alive(), "a bulk frame past the limit did not wait")
        box.new_session()
        blocked.join(5)
        self.assertEqual(result, [False])
        self.assertEqual(len(box.items), 0)
        self.assertFalse(box.put(gen, b"late control frame", False))  # the old session sends nothing more


if __name__ == "__main__":
    unittest.main()
