"""Where this API process keeps its Prometheus values. A lone process keeps them in memory. Several
behind one port (uvicorn's workers, WEB_CONCURRENCY) share a folder of memory-mapped files, so
whichever answers GET /metrics reports all of them. prometheus_client reads PROMETHEUS_MULTIPROC_DIR
when it is first imported: app/api/metrics.py imports this module before it.

The folder is on local disk (the temp folder; DATA_DIR may be an NFS mount, where mmap is unsafe)
and belongs to one run of the uvicorn supervisor: its name holds the supervisor's pid and start
time, so a restart (even as pid 1 of a restarted container) starts from an empty one, and the
folders of supervisors that are gone are removed then. A PROMETHEUS_MULTIPROC_DIR set by the
operator (gunicorn, say) is used as it is.

A uvicorn worker is a spawned multiprocessing child that imports the app once it runs, when
multiprocessing.parent_process() names its supervisor; a lone uvicorn process has no parent process."""

import contextlib
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def process_identity(pid: int) -> str | None:
    """`pid-starttime` while the process lives (Linux; elsewhere the pid alone), None once it is gone."""
    if Path("/proc/self/stat").exists():
        try:
            return f"{pid}-{Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[19]}"
        except (OSError, IndexError):
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # it lives, as another user
        pass
    return str(pid)


def _choose() -> None:
    supervisor = multiprocessing.parent_process()
    if os.environ.get(VARIABLE) or supervisor is None or supervisor.pid is None:
        return
    ours = process_identity(supervisor.pid)
    if ours is None:  # the supervisor is gone: this process is about to be, too
        return
    root = Path(tempfile.gettempdir()) / f"epochly-metrics-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    for folder in root.iterdir():
        with contextlib.suppress(ValueError):
            if folder.name != ours and process_identity(int(folder.name.split("-")[0])) != folder.name:
                shutil.rmtree(folder, ignore_errors=True)
    (root / ours).mkdir(exist_ok=True)
    os.environ[VARIABLE] = str(root / ours)


_choose()
