"""copy-in (a bulk push through a disk the host attached): requests are checked before anything is
touched, and a file is copied exactly `bytes` long into place atomically (a regular file stands in
for the block device here; the device lookup and the mount are exercised on real guests)."""

import os
import shutil
import tempfile
import unittest

from harness import agent
from test_push_tar import StubAgent


def copy_in(**req):
    return agent.CopyIn(StubAgent(), 0, 1, dict({"target": 1, "kind": "dir", "dest": "/tmp/x"}, **req))


class CopyInRequestTest(unittest.TestCase):
    def test_malformed_requests_are_einval(self):
        for bad in (
            {"target": 0},
            {"target": 256},
            {"target": "1"},
            {"target": True},
            {"dest": "relative"},
            {"dest": None},
            {"kind": "fifo"},
            {"kind": "file"},  # no bytes
            {"kind": "file", "bytes": -1},
            {"kind": "file", "bytes": 1, "mode": 0o10000},
        ):
            with self.subTest(bad=bad), self.assertRaises(agent.AgentError) as caught:
                copy_in(**bad)
            self.assertEqual(caught.exception.code, "EINVAL")

    def test_a_view_is_only_a_flag(self):
        self.assertTrue(copy_in(view=True).view)
        self.assertFalse(copy_in(view="yes").view)


class CopyInFileTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="kvmtest-agent-test-")
        self.device = os.path.join(self.top, "device")
        with open(self.device, "wb") as f:
            f.write(b"0123456789" + b"\0" * 502)  # a disk is whole sectors: the file's bytes, then zeros

    def tearDown(self):
        shutil.rmtree(self.top)

    def test_exactly_bytes_are_copied_with_the_mode(self):
        dest = os.path.join(self.top, "sub", "out.bin")
        copy_in(kind="file", bytes=10, mode=0o750, dest=dest)._copy_file(self.device)
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), b"0123456789")
        self.assertEqual(os.stat(dest).st_mode & 0o7777, 0o750)
        self.assertEqual([n for n in os.listdir(os.path.dirname(dest)) if n.startswith(".kvmtest-")], [])

    def test_a_device_shorter_than_bytes_fails_and_leaves_nothing(self):
        dest = os.path.join(self.top, "out.bin")
        with self.assertRaises(agent.AgentError) as caught:
            copy_in(kind="file", bytes=4096, dest=dest)._copy_file(self.device)
        self.assertEqual(caught.exception.code, "EIO")
        self.assertFalse(os.path.exists(dest))
        self.assertEqual([n for n in os.listdir(self.top) if n.startswith(".kvmtest-")], [])

    def test_a_directory_in_the_way_is_eisdir(self):
        with self.assertRaises(agent.AgentError) as caught:
            copy_in(kind="file", bytes=1, dest=self.top)._copy_file(self.device)
        self.assertEqual(caught.exception.code, "EISDIR")


if __name__ == "__main__":
    unittest.main()
