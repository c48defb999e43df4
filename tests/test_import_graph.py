import subprocess
import sys


def test_api_import_graph_does_not_load_tensorflow():
    code = "import sys, app.main; app.main.create_app; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"
