"""The agent's pull walks a tree one directory at a time and stops itself at the host's caps (issue 22)."""

import os
import queue
import shutil
import socket
import tempfile
import time
import unittest

from harness import Harness, agent


class StubPull:
    """What walk_tree needs of a Pull: its id, path, cap and abort flag."""

    def __init__(self, path, max_entries=None):
        self.rid, self.path, self.max_entries, self.aborted = 1, path, max_entries, False


def touch(path, data=b""):
    with open(path, "wb") as f:
        f.write(data)


class CountingScandir:
    """os.scandir, counting the names every listing handed out."""

    def __init__(self):
        self.names, self.real = 0, os.scandir

    def __call__(self, path):
        outer = self

        class Listing:
            def __enter__(self):
                self.it = outer.real(path)
                return self

            def __exit__(self, *exc):
                self.it.close()

            def __iter__(self):
                for entry in self.it:
                    outer.names += 1
                    yield entry

        return Listing()


class WalkTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="kvmtest-agent-walk-")
        self.tree = os.path.join(self.top, "tree")
        os.makedirs(os.path.join(self.tree, "b", "deep"))
        os.makedirs(os.path.join(self.tree, "a"))
        touch(os.path.join(self.tree, "z.txt"), b"z")
        touch(os.path.join(self.tree, "a", "1"))
        touch(os.path.join(self.tree, "b", "deep", "2"))
        os.symlink("a", os.path.join(self.tree, "link-to-a"))  # a link to a directory: a member, not walked into
        self.fifo = os.path.join(self.tree, "fifo")
        os.mkfifo(self.fifo)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(os.path.join(self.tree, "sock"))

    def tearDown(self):
        self.sock.close()
        shutil.rmtree(self.top)

    def test_the_order_is_os_walk_order_links_are_not_followed_specials_are_skipped(self):
        walked = [(arc, kind) for arc, _, kind in agent.walk_tree(self.tree, None, StubPull(self.tree))]
        self.assertEqual(walked, [("a", "dir"), ("b", "dir"), ("link-to-a", "link"), ("z.txt", "file"),
                                  ("a/1", "file"), ("b/deep", "dir"), ("b/deep/2", "file")])

    def test_a_root_that_is_a_link_is_followed(self):
        link = os.path.join(self.top, "root-link")
        os.symlink(self.tree, link)
        self.assertEqual([arc for arc, _, _ in agent.walk_tree(link, None, StubPull(link))][:2], ["a", "b"])

    def test_the_cap_is_met_exactly_and_one_name_more_is_refused(self):
        self.assertEqual(len(list(agent.walk_tree(self.tree, 7, StubPull(self.tree, 7)))), 7)
        with self.assertRaises(agent.AgentError) as caught:
            list(agent.walk_tree(self.tree, 6, StubPull(self.tree, 6)))
        self.assertEqual(caught.exception.code, "ETOOMANY")

    def test_a_huge_directory_is_refused_after_reading_max_entries_plus_one_names(self):
        many = os.path.join(self.top, "many")
        os.mkdir(many)
        for i in range(5000):
            os.close(os.open(os.path.join(many, "f%05d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
        counting = CountingScandir()
        agent.os.scandir = counting
        try:
            walk = agent.walk_tree(many, 100, StubPull(many, 100))
            with self.assertRaises(agent.AgentError) as caught:
                next(walk)  # nothing is yielded: the one listing is refused before it is sorted
        finally:
            agent.os.scandir = counting.real
        self.assertEqual(caught.exception.code, "ETOOMANY")
        self.assertEqual(counting.names, 101)


class PullCapsTest(unittest.TestCase):
    """The caps over the real reader loop: answered before any data, or the pull stopped by the host."""

    def setUp(self):
        self.h = Harness()
        self.top = tempfile.mkdtemp(prefix="kvmtest-agent-pullcaps-")
        self.h.send({"t": "hello", "id": 0, "nonce": "n"})
        self.h.expect(lambda f: f["t"] == "hello")

    def tearDown(self):
        self.h.close()
        shutil.rmtree(self.top)

    def answer(self, rid):
        return self.h.expect(lambda f: f["id"] == rid and f["t"] in ("pull-start", "error"))[0]

    def test_over_max_entries_is_etoomany_before_pull_start_even_when_spread_over_directories(self):
        for d in range(20):
            os.mkdir(os.path.join(self.top, "d%02d" % d))
            for i in range(10):
                touch(os.path.join(self.top, "d%02d" % d, str(i)))
        self.h.send({"t": "pull", "id": 1, "path": self.top, "maxEntries": 219})
        self.assertEqual(self.answer(1)["code"], "ETOOMANY")
        self.h.send({"t": "pull", "id": 2, "path": self.top, "maxEntries": 220})
        self.assertEqual(self.answer(2)["t"], "pull-start")
        self.h.expect(lambda f: f["id"] == 2 and f["t"] == "end")

    def test_over_max_bytes_is_etoobig_before_pull_start(self):
        touch(os.path.join(self.top, "big"), b"x" * 100000)
        self.h.send({"t": "pull", "id": 1, "path": self.top, "maxBytes": 50000})
        self.assertEqual(self.answer(1)["code"], "ETOOBIG")
        self.h.send({"t": "pull", "id": 2, "path": os.path.join(self.top, "big"), "maxBytes": 50000})
        self.assertEqual(self.answer(2)["code"], "ETOOBIG")
        self.h.send({"t": "pull", "id": 3, "path": self.top, "maxBytes": 200000, "maxEntries": 1})
        self.assertEqual(self.answer(3)["t"], "pull-start")

    def test_caps_that_are_not_positive_integers_are_einval(self):
        for rid, cap in enumerate([0, -1, True, "5", 1.5], start=1):
            self.h.send({"t": "pull", "id": rid, "path": self.top, "maxEntries": cap})
            self.assertEqual(self.answer(rid)["code"], "EINVAL", cap)

    def test_end_on_a_pull_id_stops_it_without_an_answer(self):
        big = os.path.join(self.top, "big")
        with open(big, "wb") as f:
            f.truncate(1 << 30)  # sparse: read as 1 GiB of zeros
        self.h.send({"t": "pull", "id": 1, "path": big})
        self.assertEqual(self.answer(1)["t"], "pull-start")
        self.h.send({"t": "end", "id": 1})
        time.sleep(1.0)  # a pull that went on would send some 4000 chunks meanwhile
        frames = []
        while True:
            try:
                frames.append(self.h.frames.get(timeout=0.2))
            except queue.Empty:
                break
        # it stops at its next chunk: what follows `end` is the outbox's queued frames, never the whole GiB
        self.assertLess(sum(1 for f in frames if f[0]["id"] == 1 and f[0]["t"] == "data"), agent.OUTBOX_LIMIT + 8)
        self.assertFalse(any(f[0]["id"] == 1 and f[0]["t"] in ("end", "error") for f in frames))
        self.assertIsNone(self.h.agent.lookup(1, agent.Pull))


if __name__ == "__main__":
    unittest.main()
