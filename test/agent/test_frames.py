"""The agent's decoder and reader loop survive hostile frames: deep nesting, absurd lengths, garbage."""

import struct
import unittest

from harness import Harness, agent


def raw_frame(header_bytes, body=b"", hlen=None, blen=None):
    return agent.PREFIX.pack(agent.MAGIC, len(header_bytes) if hlen is None else hlen,
                             len(body) if blen is None else blen) + header_bytes + body


NESTED = b"[" * 61440  # 60 KiB deep: the json module recurses once per level
NESTED_FULL = b"[" * 30000 + b"]" * 30000  # the same, well-formed


class DecoderTest(unittest.TestCase):
    def test_deeply_nested_header_is_a_frame_error_and_the_next_frame_decodes(self):
        decoder = agent.Decoder()
        ping = agent.encode({"t": "ping", "id": 7})
        for nested in (NESTED, NESTED_FULL, b'{"t":"exec","id":3,"argv":' + NESTED_FULL + b"}"):
            out = decoder.feed(raw_frame(nested) + ping)
            self.assertEqual(len(out), 2)
            self.assertIsInstance(out[0], agent.FrameError)
            self.assertEqual(out[1], ({"t": "ping", "id": 7}, b""))

    def test_oversized_lengths_are_refused_without_waiting_for_or_allocating_them(self):
        decoder = agent.Decoder()
        ping = agent.encode({"t": "ping", "id": 1})
        for hlen, blen in ((agent.MAX_HEADER + 1, 0), (2, agent.MAX_BODY + 1), (0xFFFFFFFF, 0xFFFFFFFF), (1, 0)):
            out = decoder.feed(struct.pack(">4sII", agent.MAGIC, hlen, blen) + b"{}" + ping)
            self.assertIsInstance(out[0], agent.FrameError, (hlen, blen))
            self.assertEqual(out[-1], ({"t": "ping", "id": 1}, b""), (hlen, blen))
            self.assertEqual(len(decoder.buf), 0)

    def test_headers_without_a_usable_id_or_type(self):
        decoder = agent.Decoder()
        for header in (b"[]", b'{"t":"ping"}', b'{"t":"ping","id":-1}', b'{"t":"ping","id":true}', b'"x"',
                       b'{"id":1}', b"\xff\xfe", b'{"t":"ping","id":1' + b"9" * 5000 + b"}"):
            (item,) = decoder.feed(raw_frame(header))
            self.assertIsInstance(item, agent.FrameError, header[:40])


class ReaderLoopTest(unittest.TestCase):
    def setUp(self):
        self.h = Harness()

    def tearDown(self):
        self.h.close()

    def test_a_nested_header_gets_a_warning_and_the_agent_keeps_serving(self):
        self.h.write(raw_frame(NESTED))
        self.h.write(raw_frame(NESTED_FULL))
        header, _ = self.h.expect(lambda h: h["t"] == "log")
        self.assertEqual(header["level"], "warn")
        self.assertIn("nested too deeply", header["message"])
        self.h.send({"t": "ping", "id": 5})
        self.h.expect(lambda h: h["t"] == "pong" and h["id"] == 5)
        self.assertTrue(self.h.loop.is_alive())

    def test_a_bad_frame_with_a_readable_id_is_answered_on_that_id(self):
        self.h.write(raw_frame(b'{"t":5,"id":4}'))
        header, _ = self.h.expect(lambda h: h["id"] == 4)
        self.assertEqual((header["t"], header["code"]), ("error", "EINVAL"))

    def test_garbage_and_absurd_lengths_then_a_ping(self):
        self.h.write(b"\x00" * 100000 + struct.pack(">4sII", agent.MAGIC, 0xFFFFFFFF, 0xFFFFFFFF) + b"junk")
        self.h.send({"t": "ping", "id": 9})
        self.h.expect(lambda h: h["t"] == "pong" and h["id"] == 9)

    def test_malformed_requests_are_errors_on_their_id(self):
        for rid, header in enumerate(({"t": "exec", "argv": 42}, {"t": "exec", "argv": ["true"], "env": {"A": 1}},
                                      {"t": "push", "dest": "rel", "kind": "dir"}, {"t": "pull", "path": None},
                                      {"t": "nope"}), start=20):
            header["id"] = rid
            self.h.send(header)
            reply, _ = self.h.expect(lambda h, rid=rid: h["id"] == rid)
            self.assertEqual((reply["t"], reply["code"]), ("error", "EINVAL"))


if __name__ == "__main__":
    unittest.main()
