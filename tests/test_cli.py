"The `alta-nb` command fails loudly on bad input."
import subprocess
from conftest import ROOT, BIN

def _run(*args): return subprocess.run([str(BIN/'alta-nb'), *args], cwd=ROOT, capture_output=True, text=True)

def test_unknown_notebook_number_is_one_line_error():
    p = _run('reproduce', '--only', '77')
    assert p.returncode == 1 and "no notebook numbered ['77']" in p.stderr

def test_unknown_profile_is_refused():
    p = _run('reproduce', '--profile', 'huge')
    assert p.returncode == 2 and 'invalid choice' in p.stderr
