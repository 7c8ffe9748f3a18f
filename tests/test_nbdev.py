"nbdev layer: the notebooks pass `nbdev-test`, and the package is what the notebooks export."
import filecmp, shutil, subprocess, sys
from pathlib import Path
from conftest import ROOT, BIN, tail

def test_nbdev_test_passes():
    p = subprocess.run([str(BIN/'nbdev-test'), '--flags', ''], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, f'nbdev-test failed:\n{tail(p.stdout + p.stderr, 60)}'

def _tree(d: Path): return sorted(str(p.relative_to(d)) for p in d.rglob('*') if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts)

def test_export_and_clean_leave_no_diff(tmp_path):
    "Export and clean a copy of the project; the copy must equal the committed files."
    for n in ('nbs', 'alta_nb'): shutil.copytree(ROOT/n, tmp_path/n, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    shutil.copy(ROOT/'pyproject.toml', tmp_path/'pyproject.toml')
    for cmd in ('nbdev-export', 'nbdev-clean'):
        p = subprocess.run([str(BIN/cmd)], cwd=tmp_path, capture_output=True, text=True)
        assert p.returncode == 0, f'{cmd} failed: {p.stderr}'
    for n in ('nbs', 'alta_nb'):
        a, b = _tree(ROOT/n), _tree(tmp_path/n)
        assert a == b, f'{n}: files differ after export: {sorted(set(a) ^ set(b))}'
        changed = [f for f in a if not filecmp.cmp(ROOT/n/f, tmp_path/n/f, shallow=False)]
        assert not changed, f'{n}: out of sync with the notebooks (run `make export`): {changed}'

def test_committed_notebooks_are_clean_and_parametrised():
    "Notebooks are committed without outputs, and each numbered one has a papermill `parameters` cell."
    import json, re
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        dirty = [i for i, c in enumerate(cells) if c.get('outputs') or c.get('execution_count')]
        assert not dirty, f'{nb.name}: cells {dirty} have outputs (run `make export`)'
        if re.match(r'\d\d_', nb.name) and not nb.name.startswith('9'):   # 9X_* are tools, not run by papermill
            tagged = [c for c in cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
            assert len(tagged) == 1, f"{nb.name}: expected one cell tagged 'parameters', found {len(tagged)}"
