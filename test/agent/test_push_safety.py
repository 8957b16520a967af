"""Push-side safety beyond test_push_tar: links already in the destination, the root member, kind
file's rules, broken streams, errno mapping, and the whole path over the link (error frame, data
after a refusal, the credit window)."""

import errno
import io
import os
import shutil
import tarfile
import tempfile
import unittest

from harness import Harness, agent
from test_push_tar import StubAgent, archive, member


class PushSafetyTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="kvmtest-agent-test-")
        self.dest = os.path.join(self.top, "dest")
        self.outside = os.path.join(self.top, "outside")
        os.mkdir(self.outside)
        self.victim = os.path.join(self.outside, "victim")
        with open(self.victim, "wb") as f:
            f.write(b"untouched")

    def tearDown(self):
        shutil.rmtree(self.top)

    def extract(self, data, kind="dir"):
        push = agent.Push(StubAgent(), 0, 1, {"dest": self.dest, "kind": kind})
        push.queue.put(data)
        push.queue.close()
        push._extract_dir() if kind == "dir" else push._extract_file()

    def refused(self, data, kind="dir", code="EBADTAR"):
        with self.assertRaises(agent.AgentError) as caught:
            self.extract(data, kind)
        self.assertEqual(caught.exception.code, code, caught.exception.message)
        self.assert_outside_untouched()
        return caught.exception.message

    def assert_outside_untouched(self):
        self.assertEqual(os.listdir(self.outside), ["victim"])
        with open(self.victim, "rb") as f:
            self.assertEqual(f.read(), b"untouched")

    def test_block_devices_are_refused(self):
        self.refused(archive(member("blk", tarfile.BLKTYPE)))

    def test_a_hard_link_to_a_link_in_the_destination_that_points_out(self):
        os.makedirs(self.dest)
        os.symlink(self.victim, os.path.join(self.dest, "door"))
        self.refused(archive(member("h", tarfile.LNKTYPE, linkname="door")))

    def test_a_hard_link_to_a_directory_is_refused(self):
        self.refused(archive(member("d", tarfile.DIRTYPE), member("h", tarfile.LNKTYPE, linkname="d")))

    def test_a_hard_link_whose_target_climbs_with_dot_dot(self):
        self.refused(archive(member("sub", tarfile.DIRTYPE), member("h", tarfile.LNKTYPE, linkname="sub/../../outside/victim")))

    def test_a_file_member_replaces_a_link_in_the_way_and_never_writes_through_it(self):
        os.makedirs(self.dest)
        os.symlink(self.victim, os.path.join(self.dest, "file"))
        self.extract(archive(member("file", data=b"new")))
        self.assertFalse(os.path.islink(os.path.join(self.dest, "file")))
        with open(os.path.join(self.dest, "file"), "rb") as f:
            self.assertEqual(f.read(), b"new")
        self.assert_outside_untouched()

    def test_a_directory_member_replaces_a_link_in_the_way_and_its_files_land_inside(self):
        os.makedirs(self.dest)
        os.symlink(self.outside, os.path.join(self.dest, "d"))
        self.extract(archive(member("d", tarfile.DIRTYPE), member("d/victim", data=b"inside")))
        self.assertFalse(os.path.islink(os.path.join(self.dest, "d")))
        with open(os.path.join(self.dest, "d", "victim"), "rb") as f:
            self.assertEqual(f.read(), b"inside")
        self.assert_outside_untouched()

    def test_a_directory_in_the_way_of_a_file_is_not_replaced(self):
        os.makedirs(os.path.join(self.dest, "x", "keep"))
        self.refused(archive(member("x", data=b"file")), code="EISDIR")
        self.assertTrue(os.path.isdir(os.path.join(self.dest, "x", "keep")))

    def test_the_root_member_must_be_a_directory(self):
        self.refused(archive(member(".", data=b"x")))
        self.refused(archive(member("./", tarfile.SYMTYPE, linkname="/")))

    def test_kind_file_refuses_two_files_and_an_empty_archive_and_leaves_no_temporary_file(self):
        self.dest = os.path.join(self.top, "one.txt")
        self.refused(archive(member("a", data=b"1"), member("b", data=b"2")), kind="file")
        self.refused(archive(), kind="file")
        self.assertEqual(sorted(os.listdir(self.top)), ["outside"])

    def test_kind_file_ignores_the_member_name_so_an_absolute_or_climbing_one_lands_at_dest(self):
        self.dest = os.path.join(self.top, "one.txt")
        for name in (self.victim, "../../outside/victim"):
            self.extract(archive(member(name, data=b"landed")), kind="file")
            with open(self.dest, "rb") as f:
                self.assertEqual(f.read(), b"landed")
        self.assert_outside_untouched()

    def test_kind_file_onto_a_directory_is_eisdir(self):
        os.makedirs(self.dest)
        self.refused(archive(member("a")), kind="file", code="EISDIR")

    def test_a_truncated_stream_is_a_tar_error_and_a_file_is_never_left_half_written(self):
        self.dest = os.path.join(self.top, "one.txt")
        data = archive(member("a", data=b"x" * 100000))
        with self.assertRaises(tarfile.TarError):
            self.extract(data[:20000], kind="file")
        self.assertEqual(agent.to_agent_error(tarfile.ReadError("unexpected end of data"), "push").code, "EBADTAR")
        self.assertEqual(sorted(os.listdir(self.top)), ["outside"])

    def test_garbage_instead_of_a_tar_is_a_tar_error(self):
        with self.assertRaises(tarfile.TarError):
            self.extract(b"\x01" * 4096)

    def test_errors_of_the_filesystem_keep_their_codes(self):
        for err, code in ((errno.ENOSPC, "ENOSPC"), (errno.EDQUOT, "ENOSPC"), (errno.EPERM, "EACCES"),
                          (errno.ENOTDIR, "ENOTDIR"), (errno.EROFS, "EIO")):
            mapped = agent.to_agent_error(OSError(err, os.strerror(err), "/x"), "push /x")
            self.assertEqual(mapped.code, code, err)
            self.assertIn(mapped.code, agent.ERROR_CODES)

    def test_a_push_under_a_regular_file_is_enotdir(self):
        with open(os.path.join(self.top, "plain"), "wb"):
            pass
        self.dest = os.path.join(self.top, "plain", "sub")
        with self.assertRaises(OSError) as caught:  # Push._run maps it with to_agent_error
            self.extract(archive(member("a")))
        self.assertEqual(agent.to_agent_error(caught.exception, "push").code, "ENOTDIR")
        self.dest = os.path.join(self.top, "plain")
        self.refused(archive(member("a")), code="ENOTDIR")


class PushCreditTest(unittest.TestCase):
    """A push whose extractor is behind: data past the credit window fails that push, never blocks the reader."""

    def test_data_beyond_the_window_is_an_einval_error_and_the_rest_is_acknowledged(self):
        a = agent.Agent(agent.Link(-1, -1), stdio=True)  # not run: frames stay in its outbox
        push = agent.Push(a, a.outbox.gen, 5, {"dest": "/nonexistent/kvmtest", "kind": "file"})
        a.register(5, push)  # not started: nobody consumes its queue
        chunk = b"\0" * agent.CHUNK
        for _ in range(agent.CREDIT_WINDOW // agent.CHUNK + 3):
            a.on_data(a.outbox.gen, 5, {}, chunk)
        frames = [agent.Decoder().feed(raw)[0][0] for _, raw, _ in a.outbox.items]
        errors = [f for f in frames if f["t"] == "error"]
        self.assertEqual(len(errors), 1, frames)
        self.assertEqual((errors[0]["id"], errors[0]["code"]), (5, "EINVAL"))
        self.assertIn("credit window", errors[0]["message"])
        self.assertIsNone(a.lookup(5, agent.Push))  # the id is free again
        consumed = sum(f["bytes"] for f in frames if f["t"] == "consumed")
        self.assertEqual(consumed, agent.CREDIT_WINDOW)  # what was queued is given back when dropped


class PushOverTheLinkTest(unittest.TestCase):
    def setUp(self):
        self.h = Harness()
        self.top = tempfile.mkdtemp(prefix="kvmtest-agent-test-")

    def tearDown(self):
        self.h.close()
        shutil.rmtree(self.top)

    def test_an_unsafe_member_is_an_ebadtar_error_frame_and_later_data_is_dropped_and_acknowledged(self):
        data = archive(member("../escaped", data=b"x"))
        self.h.send({"t": "push", "id": 3, "dest": self.top + "/dest", "kind": "dir"})
        self.h.send({"t": "data", "id": 3}, data)
        error, _ = self.h.expect(lambda h: h["id"] == 3 and h["t"] == "error")
        self.assertEqual(error["code"], "EBADTAR")
        self.assertIn("unsafe member name", error["message"])
        self.h.send({"t": "data", "id": 3}, b"\0" * 65536)  # crossing the answer: no second answer, no stall
        self.h.send({"t": "end", "id": 3})
        self.h.send({"t": "ping", "id": 4})
        header, _ = self.h.expect(lambda h: h["id"] in (3, 4) and h["t"] not in ("consumed",))
        self.assertEqual((header["t"], header["id"]), ("pong", 4))
        self.assertFalse(os.path.lexists(os.path.join(self.top, "escaped")))

    def test_a_safe_push_is_done_after_end(self):
        data = archive(member("sub", tarfile.DIRTYPE), member("sub/a", data=b"hello"))
        self.h.send({"t": "push", "id": 7, "dest": self.top + "/dest", "kind": "dir"})
        self.h.send({"t": "data", "id": 7}, data)
        self.h.send({"t": "end", "id": 7})
        self.h.expect(lambda h: h["id"] == 7 and h["t"] == "done")
        with open(os.path.join(self.top, "dest", "sub", "a"), "rb") as f:
            self.assertEqual(f.read(), b"hello")


if __name__ == "__main__":
    unittest.main()
