import subprocess
import sys


def test_api_import_graph_does_not_load_tensorflow():
    code = "import sys, app.main; app.main.create_app; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


def test_the_client_names_job_statuses_exactly_as_the_server_does():
    from app.lifecycle import TERMINAL, JobStatus
    from epochly_client import JobStatus as ClientJobStatus
    from epochly_client.models import TERMINAL as CLIENT_TERMINAL

    assert {s.name: s.value for s in ClientJobStatus} == {s.name: s.value for s in JobStatus}
    assert CLIENT_TERMINAL == TERMINAL


def test_the_dashboard_names_job_statuses_exactly_as_the_server_does():
    """The dashboard is a client too: its terminal and active sets are the state machine's."""
    import json
    import re
    from pathlib import Path

    from app.lifecycle import ACTIVE, TERMINAL

    script = (Path(__file__).parent.parent / "app" / "static" / "ui" / "app.js").read_text()

    def js_set(name: str) -> set[str]:
        match = re.search(rf"^const {name} = new Set\((\[[^\]]*\])\);", script, re.MULTILINE)
        assert match, f"app.js defines no {name} set"
        return set(json.loads(match.group(1)))

    assert js_set("TERMINAL") == TERMINAL
    assert js_set("ACTIVE") == ACTIVE
