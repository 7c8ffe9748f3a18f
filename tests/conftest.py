import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The kit never downloads at run time; the tests make sure of it.
for k in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_DATASETS_OFFLINE'): os.environ[k] = '1'
if os.environ.get('CI'): os.environ['TQDM_DISABLE'] = '1'

def tail(text: str, n: int = 40) -> str: return '\n'.join(text.splitlines()[-n:])

_CAPABILITY = {}

def _other_capability() -> tuple[str, str]:
    import torch
    native = torch.backends.cpu.get_cpu_capability().lower()
    return ('default' if native != 'default' else 'avx2'), native

def pytest_collection_modifyitems(session, config, items):
    "A session that checks another CPU capability starts that smoke run now, beside the other tests (1 thread)."
    if _CAPABILITY or not any('capability_run' in getattr(i, 'fixturenames', ()) for i in items): return
    import tempfile
    d, (other, native) = Path(tempfile.mkdtemp(prefix='alta_capability_')), _other_capability()
    env = dict(os.environ, ATEN_CPU_CAPABILITY=other, ALTA_RUNS=str(d/'runs'), ALTA_FIGURES=str(d/'figures'))
    with open(d/'log', 'w') as log:
        proc = subprocess.Popen([str(BIN/'alta-nb'), 'reproduce', '--profile', 'smoke'], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    _CAPABILITY.update(proc=proc, dir=d, other=other, native=native)

def pytest_sessionfinish(session, exitstatus):
    if _CAPABILITY and _CAPABILITY['proc'].poll() is None: _CAPABILITY['proc'].kill()

@pytest.fixture(scope='session')
def capability_run():
    "(other capability, native one, metrics): the smoke run under another ATen capability, started at collection."
    if not _CAPABILITY: pytest.skip('the capability run starts only when a collected test asks for it')
    c = _CAPABILITY; rc = c['proc'].wait()
    if rc: pytest.fail(f"smoke under ATEN_CPU_CAPABILITY={c['other']} failed (exit {rc}):\n"
                       f"{tail((c['dir']/'log').read_text())}", pytrace=False)
    return c['other'], c['native'], json.loads((c['dir']/'runs'/'smoke'/'metrics.json').read_text())

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
