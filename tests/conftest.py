import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The kit never downloads at run time; the tests make sure of it.
for k in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_DATASETS_OFFLINE'): os.environ[k] = '1'
if os.environ.get('CI'): os.environ['TQDM_DISABLE'] = '1'

def tail(text: str, n: int = 40) -> str: return '\n'.join(text.splitlines()[-n:])

@pytest.fixture(scope='session')
def smoke_run():
    "Run `alta-nb reproduce --profile smoke` once per test session; return its merged metrics."
    p = subprocess.run([str(BIN/'alta-nb'), 'reproduce', '--profile', 'smoke'], cwd=ROOT,
                       capture_output=True, text=True)
    print(p.stdout)
    if p.returncode:
        pytest.fail(f'smoke reproduction failed (exit {p.returncode}):\n{tail(p.stdout)}\n{tail(p.stderr, 5)}', pytrace=False)
    from alta_nb.core import runs_dir
    return json.loads((runs_dir()/'smoke'/'metrics.json').read_text())     # `$ALTA_RUNS` or `_runs`

@pytest.fixture(scope='session')
def realcxr():
    "The read-only real-data folder beside the checkout; tests using it skip when it is absent."
    p = ROOT.parent/'shared'/'realcxr'
    if not p.is_dir(): pytest.skip(f'real data not found at {p} (see DEVELOPERS: ../shared/realcxr)')
    return p
