"""A clone's identity step makes it new SSH host keys of the types its snapshot template had."""

import os
import shutil
import tempfile
import unittest

from harness import agent


class HostKeysTest(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="kvmtest-agent-test-")
        self.ssh = os.path.join(self.top, "ssh")
        os.mkdir(self.ssh)
        self.listing = os.path.join(self.top, "ssh-host-keys")
        self.restarts = []

    def tearDown(self):
        shutil.rmtree(self.top)

    def regenerate(self):
        return agent.regenerate_host_keys(self.listing, self.ssh, lambda: self.restarts.append(1))

    def test_no_listing_means_the_template_had_no_keys_nothing_is_made(self):
        self.assertEqual(self.regenerate(), [])
        self.assertEqual(os.listdir(self.ssh), [])
        self.assertEqual(self.restarts, [])

    @unittest.skipUnless(shutil.which("ssh-keygen"), "ssh-keygen is not installed on this host")
    def test_listed_types_are_made_anew_and_odd_names_ignored(self):
        with open(self.listing, "w") as f:
            f.write("ssh_host_ed25519_key\n../../etc/passwd\nssh_host_evil_key\n")
        with open(os.path.join(self.ssh, "ssh_host_ed25519_key.pub"), "w") as f:
            f.write("the template's key\n")  # a leftover is replaced, never kept
        self.assertEqual(self.regenerate(), ["ssh_host_ed25519_key"])
        self.assertEqual(sorted(os.listdir(self.ssh)), ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"])
        with open(os.path.join(self.ssh, "ssh_host_ed25519_key.pub")) as f:
            first = f.read()
        self.assertTrue(first.startswith("ssh-ed25519 "))
        self.assertEqual(self.restarts, [1])
        self.regenerate()  # a second clone: another key
        with open(os.path.join(self.ssh, "ssh_host_ed25519_key.pub")) as f:
            self.assertNotEqual(f.read(), first)

    @unittest.skipUnless(shutil.which("ssh-keygen"), "ssh-keygen is not installed on this host")
    def test_keys_present_but_unlisted_are_made_anew_too(self):
        # a checkpoint of a guest that made its own key after the template: its clones must not share it
        with open(os.path.join(self.ssh, "ssh_host_ed25519_key"), "w") as f:
            f.write("the checkpointed guest's key\n")
        with open(os.path.join(self.ssh, "ssh_host_ed25519_key.pub"), "w") as f:
            f.write("the checkpointed guest's key\n")
        self.assertEqual(self.regenerate(), ["ssh_host_ed25519_key"])
        with open(os.path.join(self.ssh, "ssh_host_ed25519_key.pub")) as f:
            self.assertTrue(f.read().startswith("ssh-ed25519 "))
        self.assertEqual(self.restarts, [1])


class HelloIdentityTest(unittest.TestCase):
    """A restored clone's identity rides on the hello: applied before the answer, once per identity."""

    def setUp(self):
        from harness import Harness
        self.h = Harness()
        self.applied = []
        # never the real thing in a test: it would set this host's hostname, machine-id and clock
        self.h.agent.apply_identity = lambda req, body: self.applied.append((req["machineId"], body))

    def tearDown(self):
        self.h.close()

    def hello(self, nonce, identity=None, body=b""):
        self.h.send(dict({"t": "hello", "id": 0, "nonce": nonce}, **({"identity": identity} if identity else {})), body)
        answer, _ = self.h.expect(lambda h: h["t"] == "hello" and h["nonce"] == nonce)
        return answer

    def test_applied_before_the_answer_and_once_for_repeated_hellos(self):
        ident = {"hostname": "clone-1", "machineId": "a" * 32, "timeMs": 1}
        self.assertEqual(self.hello("one", ident, b"entropy")["identity"], "applied")
        self.assertEqual(self.applied, [("a" * 32, b"entropy")])
        self.assertEqual(self.hello("two", ident, b"entropy")["identity"], "applied")
        self.assertEqual(len(self.applied), 1)  # the host's repeat of the same hello
        self.assertEqual(self.hello("three", dict(ident, machineId="b" * 32))["identity"], "applied")
        self.assertEqual(len(self.applied), 2)

    def test_a_plain_hello_says_nothing_of_identity(self):
        answer = self.hello("plain")
        self.assertNotIn("identity", answer)
        self.assertNotIn("identityError", answer)
        self.assertEqual(self.applied, [])

    def test_a_failure_is_in_the_answer_not_a_lost_hello(self):
        def fail(req, body):
            raise agent.AgentError("EIO", "ssh-keygen for ssh_host_ed25519_key failed: " + "x" * 9000)
        self.h.agent.apply_identity = fail
        answer = self.hello("bad", {"hostname": "c", "machineId": "c" * 32, "timeMs": 1})
        self.assertNotIn("identity", answer)
        self.assertTrue(answer["identityError"].startswith("EIO: ssh-keygen"))
        self.assertLessEqual(len(answer["identityError"]), agent.MAX_MESSAGE)


if __name__ == "__main__":
    unittest.main()
