"""The README's curl walkthrough runs as written against a live service."""
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Walkthrough with curl", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_readme_curl_walkthrough_trains_the_tutorial(service, tmp_path):
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.skip("the walkthrough uses curl and jq")
    (tmp_path / "key").write_text(service.key + "\n")
    script = walkthrough().replace("http://127.0.0.1:8000", service.url).replace("var/local-api-key", str(tmp_path / "key"))
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    log_lines = [line for line in result.stdout.splitlines() if line.startswith("Epoch ")]
    assert len(log_lines) == 20 and log_lines[-1].startswith("Epoch 20/20 - ")
    polled = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [int(line.split()[1].rstrip(":")) for line in polled] == list(range(1, 21))
    final_accuracy = float(log_lines[-1].rsplit("accuracy: ", 1)[1])
    assert final_accuracy >= 0.85
    assert (tmp_path / "tutorial.keras").stat().st_size > 1000
