"""Opt-in: the kit beside the official ALTA code (`bench/vs_official.py`, issues #14, #29). Runs only with a checkout at
`ALTA_OFFICIAL_REPO` and its venv (`make vs-official` builds it in ~/.cache/alta_nb/venv_official, outside the working
tree; or set `ALTA_OFFICIAL_PYTHON`)."""
import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

def official() -> tuple[str, Path]:
    "(checkout, python of the official venv), or skip saying which is missing."
    from vs_official import OFFICIAL_PYTHON
    repo = os.environ.get('ALTA_OFFICIAL_REPO', '')
    py = Path(os.environ.get('ALTA_OFFICIAL_PYTHON', OFFICIAL_PYTHON))
    if not repo: pytest.skip('ALTA_OFFICIAL_REPO is unset: point it at a checkout of github.com/DopamineLcy/ALTA to compare')
    if not (Path(repo) / 'model.py').is_file(): pytest.skip(f'ALTA_OFFICIAL_REPO={repo}: no model.py there (not an ALTA checkout)')
    if not py.is_file(): pytest.skip(f'{py}: no official venv; run `make vs-official` once (or set ALTA_OFFICIAL_PYTHON)')
    return repo, py

def test_name_map_examples():
    "Hand-written official names (from `model.py`, `adapter_block.py`, `cxrbert.py`) for one kit name of each kind."
    from vs_official import kit_to_official as k
    assert k('image.vit.blocks.3.attn_adapter.down.weight') == 'blocks.3.attn_adapter.D_fc1.weight'
    assert k('image.vit.pos_embed') == 'pos_embed'
    assert k('image.missing_token') == 'missing_token'
    assert k('decoder.pos_embed') == 'decoder_pos_embed'
    assert k('decoder.blocks.0.norm1.bias') == 'decoder_blocks.0.norm1.bias'
    assert k('image_local_projection_head.LayerNorm.weight') == 'local_projection_head.LayerNorm.weight'
    assert k('text.mlm.bert.encoder.layer.11.attention.output.attn_adapter.up.bias') == 'bert_encoder.bert.encoder.layer.11.attn_adapter.D_fc2.bias'
    assert k('text.mlm.bert.encoder.layer.0.output.mlp_adapter.down.weight') == 'bert_encoder.bert.encoder.layer.0.mlp_adapter.D_fc1.weight'
    assert k('text.cls_projection_head.dense_to_hidden.weight') == 'bert_encoder.cls_projection_head.dense_to_hidden.weight'
    assert k('text.mlm.cls.predictions.bias') == 'bert_encoder.cls.predictions.bias'
    assert k('logit_scale_local2') == 'logit_scale_local2'

def test_every_row_is_guarded():
    "Every kind of row is some mutation's to guard (that each is caught: test_vs_official_every_row_can_fail)."
    import vs_official_mutations as M
    guards = [g for _, _, gs in M.MUTATIONS.values() for g in gs]
    assert len(M.MUTATIONS) >= 10 and len(set(M.MUTATIONS)) == len(M.MUTATIONS)
    for g in ('parameters', 'D2 weight-decay group', 'D3 mixed precision', 'D5 lr schedule', 'MLM masking rule',
              'frontal 448 → 224: StudyDataset', 'gradients', 'D1+D2 step 1', 'D1+D2 two steps'):
        assert g in guards, g

def test_vs_official_small():
    repo, py = official()
    p = subprocess.run([sys.executable, str(ROOT / 'bench/vs_official.py'), '--small', '--official-python', str(py)],
                       cwd=ROOT, capture_output=True, text=True)
    print(p.stdout)
    rows = [l for l in p.stdout.splitlines() if l.rstrip().endswith('match') or 'DIFFERS' in l]
    assert rows, f'no table printed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}'
    bad = [l for l in rows if 'DIFFERS' in l]
    assert not bad and p.returncode == 0, 'rows that differ:\n' + '\n'.join(bad)
    assert len(rows) >= 30, f'expected the full table, got {len(rows)} rows'

@pytest.mark.slow
def test_vs_official_every_row_can_fail():
    "`--small --mutate all`: each mutation of the kit turns the rows it guards to DIFFERS; every row is caught (#29)."
    repo, py = official()
    p = subprocess.run([sys.executable, str(ROOT / 'bench/vs_official.py'), '--small', '--mutate', 'all',
                        '--official-python', str(py)], cwd=ROOT, capture_output=True, text=True)
    print(p.stdout)
    assert 'every row can fail: OK' in p.stdout and p.returncode == 0, \
        f'exit {p.returncode}:\n{p.stdout[-4000:]}\n{p.stderr[-2000:]}'
    lines = p.stdout.splitlines()
    caught = next(l for l in lines if 'rows caught by at least one mutation' in l)
    n, total = caught.split()[0].split('/')
    assert n == total and int(total) >= 30, caught
