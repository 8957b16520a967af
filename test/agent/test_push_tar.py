"""The agent's push side refuses tar members that would land outside the destination."""

import io
import os
import shutil
import tarfile
import tempfile
import unittest

from harness import agent


class StubAgent:
    """Just enough of Agent for a Push: its answers are recorded, not sent."""

    def __init__(self):
        import threading
        self.lock, self.sent = threading.Lock(), []

    def send(self, gen, rid, t, body=b"", bulk=False, **fields):
        self.sent.append((t, fields))
        return True

    def unregister(self, rid, obj):
        pass


def member(name, kind=tarfile.REGTYPE, data=b"x", linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def archive(*members):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, data)
    return out.getvalue()


class PushTarTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="kvmtest-agent-test-")
        self.dest = os.path.join(self.top, "dest")
        self.outside = os.path.join(self.top, "outside")
        os.mkdir(self.outside)

    def tearDown(self):
        shutil.rmtree(self.top)

    def extract(self, data, kind="dir"):
        push = agent.Push(StubAgent(), 0, 1, {"dest": self.dest, "kind": kind})
        push.queue.put(data)
        push.queue.close()
        push._extract_dir() if kind == "dir" else push._extract_file()

    def refused(self, *members):
        with self.assertRaises(agent.AgentError) as caught:
            self.extract(archive(*members))
        self.assertEqual(caught.exception.code, "EBADTAR", caught.exception.message)
        self.assertEqual(os.listdir(self.outside), [])
        self.assertFalse(os.path.lexists(os.path.join(self.top, "escaped")))
        return caught.exception.message

    def test_dot_dot_members(self):
        self.refused(member("../escaped"))
        self.refused(member("sub/../../escaped"))

    def test_absolute_members(self):
        self.refused(member(os.path.join(self.outside, "abs")))

    def test_symlinks_pointing_out(self):
        self.refused(member("l", tarfile.SYMTYPE, linkname="../outside"))
        self.refused(member("l", tarfile.SYMTYPE, linkname=self.outside))
        self.refused(member("sub", tarfile.DIRTYPE), member("sub/l", tarfile.SYMTYPE, linkname="../.."))

    def test_a_link_to_a_link_that_climbs_is_resolved_physically(self):
        # "up" -> "." is harmless; "up2" -> "up/.." climbs once "up" is resolved on disk
        self.refused(member("up", tarfile.SYMTYPE, linkname="."), member("up2", tarfile.SYMTYPE, linkname="up/.."))

    def test_writing_through_a_link_that_points_out(self):
        os.makedirs(self.dest)
        os.symlink(self.outside, os.path.join(self.dest, "door"))
        self.refused(member("door/file"))

    def test_a_link_member_then_a_file_beneath_it(self):
        os.makedirs(os.path.join(self.dest, "inner"))
        message = self.refused(member("door", tarfile.SYMTYPE, linkname="inner/../.."), member("door/escaped"))
        self.assertIn("door", message)

    def test_hard_links_out(self):
        self.refused(member("h", tarfile.LNKTYPE, linkname="../outside/x"))
        self.refused(member("h", tarfile.LNKTYPE, linkname="/etc/passwd"))

    def test_devices_and_fifos(self):
        self.refused(member("dev", tarfile.CHRTYPE))
        self.refused(member("fifo", tarfile.FIFOTYPE))

    def test_kind_file_takes_one_regular_file_only(self):
        self.dest = os.path.join(self.top, "one.txt")
        with self.assertRaises(agent.AgentError) as caught:
            self.extract(archive(member("l", tarfile.SYMTYPE, linkname="/etc/passwd")), kind="file")
        self.assertEqual(caught.exception.code, "EBADTAR")
        self.assertFalse(os.path.lexists(self.dest))

    def test_a_safe_tree_lands_inside(self):
        self.extract(archive(member("sub", tarfile.DIRTYPE), member("sub/a.txt", data=b"hello"),
                             member("sub/l", tarfile.SYMTYPE, linkname="a.txt"), member("h", tarfile.LNKTYPE, linkname="sub/a.txt")))
        with open(os.path.join(self.dest, "sub/l"), "rb") as f:
            self.assertEqual(f.read(), b"hello")
        self.assertEqual(os.stat(os.path.join(self.dest, "h")).st_nlink, 2)


if __name__ == "__main__":
    unittest.main()
