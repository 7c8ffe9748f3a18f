"""A stage's cache key is its resolved config and the code it runs: a docstring edit, or an edit of
a module no stage imports, finds the cached model; a change in code the stage runs does not."""
import ast, shutil
from pathlib import Path
import pytest
import alta_nb.core as core
from alta_nb.core import get_config, kit_closure, code_version
from alta_nb.stages import model_key, model_dir

STAGES = ('mrm', 'text_rsm', 'alta')

@pytest.fixture
def kit(tmp_path, monkeypatch):
    "A copy of the package's modules that every key reads instead; cached models under `tmp_path`."
    dst = tmp_path/'alta_nb'
    shutil.copytree(core._kit_dir(), dst, ignore=shutil.ignore_patterns('__pycache__'))
    monkeypatch.setattr(core, '_kit_dir', lambda: dst)
    monkeypatch.setenv('ALTA_DATA', str(tmp_path/'data'))
    return dst

def _reword_docstrings(path: Path):
    "Reword the module's docstring and its first function's, add a comment: the code is unchanged."
    src = path.read_text()
    fn = next(n for n in ast.walk(ast.parse(src))
              if isinstance(n, ast.FunctionDef) and ast.get_docstring(n))
    lines = src.splitlines(keepends=True)
    i = fn.body[0].lineno - 1
    q = '"""' if lines[i].lstrip().startswith('"""') else lines[i].lstrip()[0]
    lines[i] = lines[i].replace(q, q + 'Reworded: ', 1)
    lines.insert(i + 1, ' ' * (len(lines[i]) - len(lines[i].lstrip())) + '# a new comment\n')
    assert lines[0].startswith('"""')
    lines[0] = lines[0].replace('"""', '"""Reworded: ', 1)
    path.write_text(''.join(lines))
    assert path.read_text() != src

def _append(path: Path, code: str): path.write_text(path.read_text() + f'\n{code}\n')

def test_the_stages_run_the_model_data_and_engine_modules_only():
    mods = set(kit_closure('stages'))
    assert {'stages', 'alta', 'mrm', 'adapters', 'multiview', 'text', 'losses', 'data', 'learner',
            'train', 'weights', 'core'} <= mods
    assert not {'compute', 'retrieval', 'evaluate', 'report', 'ablations', 'beyond', 'docs',
                'reproduce'} & mods

def test_unrelated_edits_are_a_cache_hit(kit):
    cfg = get_config('smoke')
    keys = {k: model_key(cfg, k) for k in STAGES}
    cached = model_dir(cfg, 'alta'); cached.mkdir(parents=True)
    (cached/'model.safetensors').write_bytes(b'weights')   # `pretrained` loads it, trains nothing
    _reword_docstrings(kit/'report.py')                    # a module no stage imports...
    _append(kit/'report.py', 'EXTRA_REPORT_CONSTANT = 1')  # ... even its code
    _reword_docstrings(kit/'mrm.py')                       # prose in modules the stages run
    _reword_docstrings(kit/'stages.py')
    assert {k: model_key(cfg, k) for k in STAGES} == keys
    assert model_dir(cfg, 'alta') == cached
    assert (model_dir(cfg, 'alta')/'model.safetensors').is_file()

@pytest.mark.parametrize('module', ['losses', 'mrm', 'data', 'train', 'core'])
def test_a_change_in_code_a_stage_runs_changes_its_key(kit, module):
    cfg = get_config('smoke')
    keys = {k: model_key(cfg, k) for k in STAGES}
    _append(kit/f'{module}.py', '_CHANGED = 1')
    new = {k: model_key(cfg, k) for k in STAGES}
    assert all(new[k] != keys[k] for k in STAGES), (keys, new)
    assert not (model_dir(cfg, 'alta')/'model.safetensors').exists()

def test_the_config_still_keys_each_stage(kit):
    cfg = get_config('smoke'); more = cfg.replace(epochs=cfg.epochs + 1)
    assert model_key(more, 'alta') != model_key(cfg, 'alta')
    assert model_key(more, 'mrm') == model_key(cfg, 'mrm')      # an alignment-only field

def test_code_version_follows_lazy_imports(tmp_path):
    (tmp_path/'a.py').write_text('def f():\n    from alta_nb.b import g\n    return g()\n')
    (tmp_path/'b.py').write_text('from . import c\ng = lambda: c.x\n')
    (tmp_path/'c.py').write_text('x = 1\n')
    assert kit_closure('a', root=tmp_path) == ['a', 'b', 'c']
    key = code_version('a', root=tmp_path)
    (tmp_path/'c.py').write_text('x = 2\n')
    assert code_version('a', root=tmp_path) != key
