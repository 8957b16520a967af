"""Frame limits beyond test_frames: a wrong magic, garbage that never ends, frames at the limits and
one byte past them, bad JSON on the link, messages cut to size, ids misused. The agent answers with
an error or a warning, keeps serving, and never holds more than one frame."""

import json
import struct
import unittest

from harness import Harness, agent


def prelude(magic, hlen, blen):
    return struct.pack(">4sII", magic, hlen, blen)


def header_of(size, **fields):
    """A JSON header of exactly `size` bytes."""
    base = dict(fields, pad="")
    raw = json.dumps(base, separators=(",", ":")).encode()
    base["pad"] = "x" * (size - len(raw))
    raw = json.dumps(base, separators=(",", ":")).encode()
    assert len(raw) == size
    return raw


class DecoderLimitsTest(unittest.TestCase):
    def test_a_wrong_magic_is_one_frame_error_and_the_next_frame_decodes(self):
        decoder = agent.Decoder()
        ping = agent.encode({"t": "ping", "id": 2})
        out = decoder.feed(b"KVT2" + ping[4:] + b"XVT1" + ping[4:] + ping)
        self.assertEqual(len([i for i in out if isinstance(i, agent.FrameError)]), 1)  # one report per run of garbage
        self.assertIn("corrupt frame", str(out[0]))
        self.assertEqual(out[-1], ({"t": "ping", "id": 2}, b""))

    def test_garbage_without_a_magic_is_dropped_as_it_comes(self):
        decoder = agent.Decoder()
        for _ in range(64):
            decoder.feed(b"\x00KV" * 100000)  # 19 MiB in all, never a whole magic
            self.assertLessEqual(len(decoder.buf), 3)
        self.assertEqual(decoder.feed(agent.encode({"t": "ping", "id": 1}))[-1], ({"t": "ping", "id": 1}, b""))

    def test_a_half_frame_waits_only_for_its_own_validated_length(self):
        decoder = agent.Decoder()
        frame = agent.encode({"t": "stdin", "id": 3}, b"b" * 1000)
        for i in range(len(frame) - 1):
            self.assertEqual(decoder.feed(frame[i:i + 1]), [])
            self.assertLessEqual(len(decoder.buf), len(frame))
        self.assertEqual(decoder.feed(frame[-1:]), [({"t": "stdin", "id": 3}, b"b" * 1000)])

    def test_frames_at_the_limits_decode_and_one_byte_more_is_refused(self):
        decoder = agent.Decoder()
        at_limit = header_of(agent.MAX_HEADER, t="stdin", id=4)
        body = b"z" * agent.MAX_BODY
        ((header, got),) = decoder.feed(prelude(agent.MAGIC, len(at_limit), len(body)) + at_limit + body)
        self.assertEqual((header["t"], len(got)), ("stdin", agent.MAX_BODY))
        over = header_of(agent.MAX_HEADER + 1, t="stdin", id=4)
        out = decoder.feed(prelude(agent.MAGIC, len(over), 0) + over + agent.encode({"t": "ping", "id": 5}))
        self.assertIsInstance(out[0], agent.FrameError)
        self.assertEqual(out[-1], ({"t": "ping", "id": 5}, b""))

    def test_the_agent_never_makes_a_frame_past_the_limits(self):
        with self.assertRaises(ValueError):
            agent.encode({"t": "stdout", "id": 1}, b"x" * (agent.MAX_BODY + 1))
        with self.assertRaises(ValueError):
            agent.encode({"t": "log", "id": 0, "message": "m" * agent.MAX_HEADER})
        self.assertLess(agent.CHUNK, agent.MAX_BODY)  # output and pull frames are CHUNK at most


class ReaderLoopLimitsTest(unittest.TestCase):
    def setUp(self):
        self.h = Harness()

    def tearDown(self):
        self.h.close()

    def test_a_header_that_is_not_json_is_a_warning_on_the_link(self):
        for raw in (b"{not json}", b"\xc3\x28\x00\x00"):
            self.h.write(prelude(agent.MAGIC, len(raw), 0) + raw)
            header, _ = self.h.expect(lambda h: h["t"] == "log")
            self.assertEqual((header["id"], header["level"]), (0, "warn"))
            self.assertIn("not UTF-8 JSON", header["message"])
        self.h.send({"t": "ping", "id": 1})
        self.h.expect(lambda h: h["t"] == "pong" and h["id"] == 1)

    def test_a_wrong_magic_on_the_link_is_one_warning_then_service(self):
        ping = agent.encode({"t": "ping", "id": 2})
        self.h.write(b"KVT2" + ping[4:] * 50)
        header, _ = self.h.expect(lambda h: h["t"] == "log")
        self.assertIn("corrupt frame", header["message"])
        self.h.send({"t": "ping", "id": 3})
        self.h.expect(lambda h: h["t"] == "pong" and h["id"] == 3)

    def test_a_body_past_the_limit_announced_on_the_link_is_not_waited_for(self):
        self.h.write(prelude(agent.MAGIC, 20, agent.MAX_BODY + 1) + b'{"t":"ping","id":99}')
        self.h.send({"t": "ping", "id": 4})
        self.h.expect(lambda h: h["t"] == "pong" and h["id"] == 4)

    def test_error_messages_are_cut_so_the_answer_is_always_a_frame(self):
        path = "/" + "p" * 60000  # the message would quote it whole
        self.h.send({"t": "pull", "id": 5, "path": path})
        header, _ = self.h.expect(lambda h: h["id"] == 5)
        self.assertEqual(header["t"], "error")
        self.assertLessEqual(len(header["message"]), agent.MAX_MESSAGE)
        self.h.send({"t": "exec", "id": 6, "argv": ["x" * 60000]})
        header, _ = self.h.expect(lambda h: h["id"] == 6)
        self.assertEqual(header["t"], "error")  # ENAMETOOLONG: EIO
        self.assertLessEqual(len(header["message"]), agent.MAX_MESSAGE)

    def test_an_unknown_signal_is_a_warning_not_an_error_on_the_exec(self):
        self.h.send({"t": "exec", "id": 7, "argv": ["sleep", "1000"], "stdin": False})
        self.h.expect(lambda h: h["t"] == "started" and h["id"] == 7)
        self.h.send({"t": "signal", "id": 7, "signal": "SIGFOO"})
        header, _ = self.h.expect(lambda h: h["t"] == "log")
        self.assertIn("unknown signal", header["message"])
        self.h.send({"t": "signal", "id": 7, "signal": "SIGKILL"})
        header, _ = self.h.expect(lambda h: h["id"] == 7)
        self.assertEqual((header["t"], header["signal"]), ("exit", "SIGKILL"))

    def test_a_terminal_of_a_bad_size_is_refused_and_a_bad_resize_is_a_warning(self):
        for i, tty in enumerate(({"rows": 0, "cols": 80}, {"rows": 24}, {"rows": 24, "cols": 70000}, {"rows": True, "cols": 80}, "big")):
            self.h.send({"t": "exec", "id": 20 + i, "argv": ["true"], "stdin": True, "tty": tty})
            header, _ = self.h.expect(lambda h, rid=20 + i: h["id"] == rid)
            self.assertEqual((header["t"], header["code"]), ("error", "EINVAL"))
        self.h.send({"t": "exec", "id": 30, "argv": ["sleep", "1000"], "stdin": True, "tty": {"rows": 24, "cols": 80}})
        self.h.expect(lambda h: h["t"] == "started" and h["id"] == 30)
        self.h.send({"t": "resize", "id": 30, "rows": -1, "cols": 80})
        header, _ = self.h.expect(lambda h: h["t"] == "log")
        self.assertIn("resize", header["message"])
        self.h.send({"t": "signal", "id": 30, "signal": "SIGKILL"})
        header, _ = self.h.expect(lambda h: h["id"] == 30)
        self.assertEqual((header["t"], header["signal"]), ("exit", "SIGKILL"))

    def test_ids_in_use_and_id_zero_are_refused_on_their_id(self):
        self.h.send({"t": "exec", "id": 8, "argv": ["sleep", "1000"], "stdin": False})
        self.h.expect(lambda h: h["t"] == "started" and h["id"] == 8)
        self.h.send({"t": "exec", "id": 8, "argv": ["true"], "stdin": False})
        header, _ = self.h.expect(lambda h: h["id"] == 8)
        self.assertEqual((header["t"], header["code"]), ("error", "EINVAL"))
        self.assertIn("already in use", header["message"])
        self.h.send({"t": "pull", "id": 0, "path": "/"})
        header, _ = self.h.expect(lambda h: h["id"] == 0 and h["t"] == "error")
        self.assertIn("reserved", header["message"])
        self.h.send({"t": "signal", "id": 8, "signal": "SIGKILL"})
        header, _ = self.h.expect(lambda h: h["id"] == 8)
        self.assertEqual(header["t"], "exit")  # the first exec was not disturbed

    def test_stream_frames_for_unknown_ids_are_dropped_silently(self):
        for t in ("stdin", "stdin-end", "data", "end"):
            self.h.send({"t": t, "id": 77}, b"x" if t in ("stdin", "data") else b"")
        self.h.send({"t": "ping", "id": 9})
        header, _ = self.h.expect(lambda h: h["id"] in (77, 9))
        self.assertEqual((header["t"], header["id"]), ("pong", 9))


if __name__ == "__main__":
    unittest.main()
