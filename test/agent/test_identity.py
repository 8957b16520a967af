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


if __name__ == "__main__":
    unittest.main()
