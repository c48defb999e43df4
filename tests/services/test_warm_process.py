"""The warm helper process lives and dies with the process that owns it."""
import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT

OWNER = """
import os, sys
from app.services.warm_process import WarmProcess

helper = WarmProcess("the test helper", os.getpid)
print(helper.call(os.getpid, timeout_s=60, too_slow="slow"), flush=True)
sys.stdin.read()  # until the test kills this process
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for every purpose here.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_a_helper_exits_when_its_owner_is_killed_without_a_chance_to_stop_it():
    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        helper_pid = int(owner.stdout.readline())
        assert helper_pid != owner.pid and alive(helper_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + 10
        while alive(helper_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(helper_pid), "the helper outlived its owner"
    finally:
        owner.kill()
