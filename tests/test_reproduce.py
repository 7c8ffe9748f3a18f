"The papermill layer: the smoke reproduction runs every numbered notebook and matches the goldens."
import json
from alta_nb.reproduce import find_notebooks
from alta_nb.goldens import load_goldens, compare_goldens
from conftest import ROOT

def test_smoke_run_writes_report(smoke_run):
    stems = [p.stem for p in find_notebooks(ROOT/'nbs')]
    assert stems, 'no numbered notebooks found'
    from alta_nb.core import runs_dir
    out = runs_dir()/'smoke'
    timings = json.loads((out/'timings.json').read_text())
    assert set(stems) <= set(timings) and timings['total'] > 0
    assert set(stems) <= set(smoke_run)
    report = (out/'report.md').read_text()
    for s in stems: assert f'| {s} | ok |' in report
    for s in stems: assert (out/f'{s}.ipynb').exists(), f'executed copy of {s} missing'

def test_goldens_match(smoke_run):
    goldens = load_goldens(ROOT/'tests'/'goldens')
    assert goldens, 'tests/goldens is empty: run `make goldens`'
    diffs = compare_goldens(smoke_run, goldens)
    assert not diffs, 'metrics differ from tests/goldens (run `make goldens` if the change is deliberate):\n' + '\n'.join(diffs)

def test_goldens_hold_under_another_cpu_capability(capability_run):
    "Float kernels differ between CPUs: the goldens must hold for the same commit run with other SIMD kernels."
    other, native, metrics = capability_run           # started at collection, beside the native run (conftest)
    diffs = compare_goldens(metrics, load_goldens(ROOT/'tests'/'goldens'))
    assert not diffs, f'goldens do not hold under ATEN_CPU_CAPABILITY={other} (native {native}):\n' + '\n'.join(diffs)

def test_goldens_make_ordinal_claims():
    "The kit's claims are ordinal checks, which hold on any CPU; at least 20 of them."
    goldens = load_goldens(ROOT/'tests'/'goldens')
    claims = [f'{s}.{k}' for s, g in goldens.items() for k, v in g.items() if isinstance(v, dict) and {'gt', 'ge', 'lt', 'le'} & set(v)]
    assert len(claims) >= 20, claims
