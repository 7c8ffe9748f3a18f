"""Opt-in: the kit beside the official ALTA code (`bench/vs_official.py`, issue #14). Runs only with a checkout at
`ALTA_OFFICIAL_REPO` and its venv (`make vs-official` builds `.venv_official`, or set `ALTA_OFFICIAL_PYTHON`)."""
import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

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

def test_vs_official_small():
    repo = os.environ.get('ALTA_OFFICIAL_REPO', '')
    py = Path(os.environ.get('ALTA_OFFICIAL_PYTHON', ROOT / '.venv_official/bin/python'))
    if not repo: pytest.skip('ALTA_OFFICIAL_REPO is unset: point it at a checkout of github.com/DopamineLcy/ALTA to compare')
    if not (Path(repo) / 'model.py').is_file(): pytest.skip(f'ALTA_OFFICIAL_REPO={repo}: no model.py there (not an ALTA checkout)')
    if not py.is_file(): pytest.skip(f'{py}: no official venv; run `make vs-official` once (or set ALTA_OFFICIAL_PYTHON)')
    p = subprocess.run([sys.executable, str(ROOT / 'bench/vs_official.py'), '--small', '--official-python', str(py)],
                       cwd=ROOT, capture_output=True, text=True)
    print(p.stdout)
    rows = [l for l in p.stdout.splitlines() if l.rstrip().endswith('match') or 'DIFFERS' in l]
    assert rows, f'no table printed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}'
    bad = [l for l in rows if 'DIFFERS' in l]
    assert not bad and p.returncode == 0, 'rows that differ:\n' + '\n'.join(bad)
    assert len(rows) >= 30, f'expected the full table, got {len(rows)} rows'
