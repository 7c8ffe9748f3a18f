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

MAX_CELL_LINES, MAX_MODULE_LINES = 40, 350   # issue #13: one room per concern

def _source(cell) -> str:
    s = cell.get('source', '')
    return ''.join(s) if isinstance(s, list) else s

def _directives(cell) -> list[str]:
    "The cell's leading `#|` lines (nbdev's directives)."
    out = []
    for line in _source(cell).splitlines():
        if not line.startswith('#|'): break
        out.append(line[2:].strip())
    return out

def _is_export(cell) -> bool: return cell['cell_type'] == 'code' and any(d.split()[:1] in (['export'], ['exports'], ['exporti']) for d in _directives(cell))

def _is_prose(cell) -> bool:
    "A markdown cell with at least one line of text (three words or more) that is not a heading."
    return cell['cell_type'] == 'markdown' and any(len(l.split()) >= 3 and not l.lstrip().startswith('#') for l in _source(cell).splitlines())

def test_notebook_cells_are_short_and_exports_follow_prose():
    "No code cell over 40 lines; a notebook that exports explains itself in a markdown cell before its first export."
    import json
    long, no_prose = [], []
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        for i, c in enumerate(cells):
            lines = _source(c).splitlines()
            if c['cell_type'] == 'code' and len(lines) > MAX_CELL_LINES:
                first = next((l for l in lines if l.strip() and not l.startswith('#|')), lines[0]).strip()
                long.append(f'{nb.name} cell {i} (`{first[:60]}`): {len(lines)} lines')
        first_export = next((i for i, c in enumerate(cells) if _is_export(c)), None)
        if first_export is not None and not any(_is_prose(c) for c in cells[:first_export]):
            no_prose.append(f'{nb.name}: no markdown prose before the first `#| export` (cell {first_export})')
    assert not long, f'code cells over {MAX_CELL_LINES} lines (split them, each piece after a short markdown paragraph):\n' + '\n'.join(long)
    assert not no_prose, '\n'.join(no_prose)

MAX_CODE_CHARS = 100

def test_code_lines_are_short():
    "No code line over 100 characters in any notebook's code cells."
    import json
    long = []
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            if c['cell_type'] != 'code': continue
            long += [f'{nb.name} cell {i}: {len(l)} chars: {l.strip()[:60]}'
                     for l in _source(c).split('\n') if len(l) > MAX_CODE_CHARS]
    assert not long, f'code lines over {MAX_CODE_CHARS} characters (wrap or shorten them):\n' + '\n'.join(long)

def test_modules_are_short():
    "No exported module over 350 lines (the generated index `_modidx.py` aside)."
    sizes = {p.name: len(p.read_text().splitlines()) for p in sorted((ROOT/'alta_nb').glob('*.py')) if p.name != '_modidx.py'}
    long = [f'alta_nb/{n}: {k} lines' for n, k in sizes.items() if k > MAX_MODULE_LINES]
    assert not long, f'modules over {MAX_MODULE_LINES} lines (split the notebook):\n' + '\n'.join(long)


def test_every_lesson_ends_with_what_this_shows():
    "Each lesson papermill runs ends with `## What this shows` and the cell that writes it from the run."
    import json
    from alta_nb.reproduce import find_notebooks
    bad = []
    for nb in find_notebooks(ROOT/'nbs'):
        cells = [c for c in json.loads(nb.read_text())['cells'] if _source(c).strip()]
        head, last = cells[-2], cells[-1]
        if not (head['cell_type'] == 'markdown' and _source(head).lstrip().startswith('## What this shows')):
            bad.append(f'{nb.name}: the second-last cell is not a `## What this shows` heading')
        elif not (last['cell_type'] == 'code' and f"what_this_shows('{nb.stem}'" in _source(last)):
            bad.append(f"{nb.name}: the last cell does not call what_this_shows('{nb.stem}', ...)")
    assert not bad, '\n'.join(bad)
