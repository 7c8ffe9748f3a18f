"The papermill layer: the smoke reproduction runs every numbered notebook and matches the goldens."
import json
from alta_nb.reproduce import find_notebooks, load_goldens, compare_goldens
from conftest import ROOT

def test_smoke_run_writes_report(smoke_run):
    stems = [p.stem for p in find_notebooks(ROOT/'nbs')]
    assert stems, 'no numbered notebooks found'
    out = ROOT/'_runs'/'smoke'
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
