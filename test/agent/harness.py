"""Loads guest/agent.py as a module and runs its reader loop in-process over two pipes."""

import importlib.util
import os
import queue
import threading
import time

AGENT_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "guest", "agent.py")


def load_agent():
    spec = importlib.util.spec_from_file_location("kvmtest_agent", AGENT_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agent = load_agent()
agent.log = lambda message: None  # the agent's stderr lines would bury the test report


class Harness:
    """The host's end: frames go in through one pipe, come out of another, decoded by a reader thread."""

    def __init__(self):
        a_r, self.host_w = os.pipe()
        self.host_r, a_w = os.pipe()
        self.agent = agent.Agent(agent.Link(a_r, a_w), stdio=True)
        self.frames = queue.Queue()
        self.loop = threading.Thread(target=self.agent.run, daemon=True)
        self.loop.start()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        decoder = agent.Decoder()
        while True:
            try:
                data = os.read(self.host_r, 1 << 20)
            except OSError:
                return
            if not data:
                return
            for item in decoder.feed(data):
                self.frames.put(item)

    def send(self, header, body=b""):
        self.write(agent.encode(header, body))

    def write(self, raw):
        agent.write_all(self.host_w, raw)

    def write_in_background(self, raw):
        """Writes from a thread, so a test can tell a blocked reader loop from a slow one (join)."""
        thread = threading.Thread(target=self.write, args=(raw,), daemon=True)
        thread.start()
        return thread

    def expect(self, match, timeout=60):
        """The next frame for which match(header) holds (others are kept in `seen`); fails after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching frame from the agent within %d s" % timeout)
            try:
                item = self.frames.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(item, tuple) and match(item[0]):
                return item

    def close(self):
        self.agent.abort_all()  # kill what the test started
        os.close(self.host_w)  # EOF: the loop ends (stdio mode)
        self.loop.join(10)
        # the other pipe ends stay open: daemon threads may still touch them, a reused fd number would be worse
