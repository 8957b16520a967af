"""No head-of-line blocking: stdin or push data nobody reads never stops the agent reading the link."""

import unittest

from harness import Harness, agent

WINDOW = agent.CREDIT_WINDOW
CHUNK = 256 * 1024


def frames(t, rid, total):
    piece = agent.encode({"t": t, "id": rid}, b"\0" * CHUNK)
    return piece * (total // CHUNK)


class NoHeadOfLineTest(unittest.TestCase):
    def setUp(self):
        self.h = Harness()

    def tearDown(self):
        self.h.close()

    def start(self, rid, argv, stdin=True):
        self.h.send({"t": "exec", "id": rid, "argv": argv, "stdin": stdin})
        self.h.expect(lambda h: h["t"] == "started" and h["id"] == rid)

    def test_a_flood_beyond_the_window_fails_that_exec_alone_and_signals_still_get_through(self):
        self.start(1, ["sleep", "1000"])  # never reads its stdin
        self.start(2, ["sleep", "1000"])
        flood = self.h.write_in_background(frames("stdin", 1, 16 * WINDOW))  # 64 MiB, the host ignoring its credit
        flood.join(120)
        self.assertFalse(flood.is_alive(), "the agent stopped reading the link")
        error, _ = self.h.expect(lambda h: h["id"] == 1 and h["t"] == "error")
        self.assertEqual(error["code"], "EINVAL")
        self.assertIn("credit window", error["message"])
        self.h.send({"t": "signal", "id": 2, "signal": "SIGTERM"})
        exit_, _ = self.h.expect(lambda h: h["id"] == 2 and h["t"] == "exit")
        self.assertEqual((exit_["code"], exit_["signal"]), (None, "SIGTERM"))

    def test_within_the_window_a_process_that_does_not_read_still_gets_its_signal(self):
        self.start(3, ["sleep", "1000"])
        self.h.write(frames("stdin", 3, WINDOW))  # exactly the window: allowed, never acknowledged
        self.h.send({"t": "ping", "id": 4})
        self.h.expect(lambda h: h["t"] == "pong" and h["id"] == 4)
        self.h.send({"t": "signal", "id": 3, "signal": "SIGKILL"})
        exit_, _ = self.h.expect(lambda h: h["id"] == 3 and h["t"] in ("exit", "error"))
        self.assertEqual((exit_["t"], exit_["signal"]), ("exit", "SIGKILL"))

    def test_consumed_bytes_are_acknowledged_so_a_host_that_keeps_the_rule_streams_any_size(self):
        self.start(5, ["sh", "-c", "cat >/dev/null"])
        total, acked, sent = 5 * WINDOW, 0, 0
        piece = agent.encode({"t": "stdin", "id": 5}, b"\1" * CHUNK)
        while sent < total:
            while sent - acked + CHUNK > WINDOW:
                header, _ = self.h.expect(lambda h: h["id"] == 5 and h["t"] in ("consumed", "error"))
                self.assertEqual(header["t"], "consumed")
                acked += header["bytes"]
            self.h.write(piece)
            sent += CHUNK
        self.h.send({"t": "stdin-end", "id": 5})
        while True:
            header, _ = self.h.expect(lambda h: h["id"] == 5)
            if header["t"] == "consumed":
                acked += header["bytes"]
            else:
                break
        self.assertEqual((header["t"], header["code"]), ("exit", 0))
        self.assertEqual(acked, total)

    def test_a_push_flood_never_stops_the_reader(self):
        import shutil
        import tarfile
        import tempfile
        top = tempfile.mkdtemp(prefix="kvmtest-agent-test-")
        try:
            info = tarfile.TarInfo("big")
            info.size = 1 << 30  # announced, and then fed faster than the disk may take it
            self.h.send({"t": "push", "id": 6, "dest": top + "/big", "kind": "file"})
            self.h.send({"t": "data", "id": 6}, info.tobuf(tarfile.PAX_FORMAT))
            self.start(7, ["sleep", "1000"])
            flood = self.h.write_in_background(frames("data", 6, 16 * WINDOW))
            flood.join(120)
            self.assertFalse(flood.is_alive(), "the agent stopped reading the link")
            self.h.send({"t": "signal", "id": 7, "signal": "SIGTERM"})
            self.h.expect(lambda h: h["id"] == 7 and h["t"] == "exit")
        finally:
            self.h.agent.abort_all()
            # the aborted push removes its own temp file on its thread, perhaps while rmtree walks
            shutil.rmtree(top, onerror=lambda fn, path, exc: None if issubclass(exc[0], FileNotFoundError) else (_ for _ in ()).throw(exc[1]))


class ByteQueueTest(unittest.TestCase):
    def test_put_never_blocks_and_reports_overflow(self):
        acks = []
        q = agent.ByteQueue(acks.append)
        self.assertTrue(q.put(b"\0" * WINDOW))
        self.assertFalse(q.put(b"\0"))
        self.assertEqual(q.read(CHUNK), b"\0" * CHUNK)
        self.assertEqual(acks, [CHUNK])
        self.assertTrue(q.put(b"\0" * CHUNK))
        q.abort()  # the consumer went away: everything still queued is given back
        self.assertEqual(sum(acks), CHUNK + WINDOW)
        self.assertTrue(q.put(b"\0" * 10))  # and later data is dropped and acknowledged at once
        self.assertEqual(acks[-1], 10)


if __name__ == "__main__":
    unittest.main()
