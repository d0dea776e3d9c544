"""Starts `moe serve` on an ephemeral port of 127.0.0.1 for a test, and stops it."""
import os
import re
import signal
import subprocess
import sys
import time


class Server:
    def __init__(self, moe, *args):
        self.moe = moe
        self.proc = subprocess.Popen([moe, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"moe serve did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(match.group(1))
        self.base = f"http://127.0.0.1:{self.port}"

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout=60):
        """SIGTERM, then the exit code (which must be 0)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise SystemExit("moe serve did not stop within %d s of SIGTERM" % timeout)


def moe_run(moe, prompt, max_tokens, temperature=0.0, top_p=1.0, seed=0):
    """What `moe run` generates alone for a prompt: the oracle of every served text."""
    import json
    out = subprocess.run([moe, "run", "--json", "-p", prompt, "-n", str(max_tokens), "-t", str(temperature),
                          "--top-p", str(top_p), "--seed", str(seed)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)
