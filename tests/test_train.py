"Engine layer: a SIGKILLed run resumes to the same weights and metrics; torchrun DDP (gloo, 2 CPU processes) equals one process; bad input fails in one line."
import csv, json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from conftest import ROOT, BIN, tail
from alta_nb.stability import list_checkpoints; from alta_nb.train import fit; from alta_nb.weights import load_weights, save_weights; from alta_nb.learner import ToyStudyModel, ToyStudies, micro_batch_size
from alta_nb.core import get_config

WORKER = ROOT/'tests'/'train_worker.py'
ENV = dict(os.environ, OMP_NUM_THREADS='1', TQDM_DISABLE='1', PYTHONPATH=str(ROOT/'tests'))

def _kind():
    "The real ALTA model once the model and data layers are importable; the engine's stand-in before that."
    try:
        from alta_nb.alta import build_model  # noqa: F401
        from alta_nb.data import study_dataloader  # noqa: F401
        return 'alta'
    except ImportError: return 'toy'

def _in_process(cmd, d, kind, **kw):
    "Run a worker command in this process (the reference runs; saves a process start)."
    import argparse, train_worker
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: getattr(train_worker, f'cmd_{cmd}')(argparse.Namespace(dir=str(d), kind=kind, resume=False, sleep=0.0, **kw))
    finally: torch.set_num_threads(n)

def _run(args, **kw):
    p = subprocess.run([sys.executable, str(WORKER), *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, f'worker {args} failed:\n{tail(p.stdout + p.stderr)}'
    return p

def _losses_csv(run_dir):
    with open(Path(run_dir)/'metrics.csv') as f: return [float(r['loss']) for r in csv.DictReader(f)]

def _same_weights(a, b):
    A, B = load_file(str(a)), load_file(str(b))
    assert A.keys() == B.keys()
    bad = [k for k in A if not torch.equal(A[k], B[k])]
    assert not bad, f'weights differ after resume: {bad[:5]}'

def test_sigkill_mid_epoch_then_resume_is_exact(tmp_path):
    kind, ref, cut = _kind(), tmp_path/'ref', tmp_path/'cut'
    _in_process('fit', ref, kind)                                       # uninterrupted
    n_steps = len(json.loads((ref/'losses.json').read_text()))
    steps_per_epoch = n_steps // 2
    child = subprocess.Popen([sys.executable, str(WORKER), 'fit', str(cut), '--kind', kind, '--sleep', '0.25'],
                             cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:                                   # wait for a mid-epoch checkpoint (step 4 of the first epoch)
            done = [int(p.name.split('_')[1]) for p in list_checkpoints(cut)]
            if any(s >= 4 for s in done) or child.poll() is not None: break
            time.sleep(0.05)
        assert child.poll() is None, f'child ended before it could be killed: {child.stderr.read().decode()[-2000:]}'
        child.send_signal(signal.SIGKILL); child.wait(30)
    finally:
        if child.poll() is None: child.kill()
    assert child.returncode == -signal.SIGKILL
    last = int(list_checkpoints(cut)[-1].name.split('_')[1])
    assert 0 < last < steps_per_epoch, f'kill was not mid-epoch: last checkpoint at step {last}, epoch has {steps_per_epoch}'
    assert not (cut/'final.safetensors').exists()
    _run(['fit', str(cut), '--kind', kind, '--resume'])
    _same_weights(ref/'final.safetensors', cut/'final.safetensors')
    assert json.loads((cut/'losses.json').read_text()) == json.loads((ref/'losses.json').read_text())
    assert _losses_csv(cut) == _losses_csv(ref)                          # metrics.csv too, rows of the killed run dropped

def test_torchrun_two_gloo_processes_equal_one(tmp_path):
    kind = _kind()
    _in_process('grads', tmp_path, kind)                                # one process, the whole global batch
    p = subprocess.run([str(BIN/'torchrun'), '--nproc_per_node=2', '--master_port', str(29500 + os.getpid() % 1000),
                        str(WORKER), 'grads', str(tmp_path), '--kind', kind],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f'torchrun failed:\n{tail(p.stdout + p.stderr)}'
    one, two = (json.loads((tmp_path/f'loss_w{w}.json').read_text()) for w in (1, 2))
    assert abs(one['loss'] - two['loss']) < 1e-5, (one['loss'], two['loss'])
    g1, g2 = load_file(str(tmp_path/'grads_w1.safetensors')), load_file(str(tmp_path/'grads_w2.safetensors'))
    assert g1.keys() == g2.keys() and g1
    # float32 sums in another order (two half-batch grads averaged vs one batch): ~1e-6 apart; a lost gradient is far more
    for k in g1: torch.testing.assert_close(g2[k], g1[k], rtol=1e-4, atol=1e-5, msg=lambda m: f'{k}: {m}')
    assert len(one['fit']) == len(two['fit']) == 3
    for a, b in zip(one['fit'], two['fit']): assert abs(a - b) < 1e-4, (one['fit'], two['fit'])
    w1, w2 = load_file(str(tmp_path/'weights_w1.safetensors')), load_file(str(tmp_path/'weights_w2.safetensors'))
    for k in w1: torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5, msg=lambda m: f'{k}: {m}')

def test_bad_input_one_line_errors(tmp_path):
    from torch.utils.data import DataLoader, default_collate
    dl = DataLoader(ToyStudies(16), batch_size=4, collate_fn=default_collate)
    cfg = get_config('smoke', batch_size=4, epochs=1, device='cpu')
    fit(ToyStudyModel(), dl, cfg, tmp_path/'ok', progress=False)
    ck = list_checkpoints(tmp_path/'ok')[-1]
    cases = [  # (call, exception, expected words)
        (lambda: fit(ToyStudyModel(), dl, cfg.replace(batch_size=10, accum_steps=3), tmp_path/'a', progress=False),
         ValueError, 'batch_size 10 is not divisible by accum_steps 3'),
        (lambda: fit(ToyStudyModel(), dl, cfg, tmp_path/'missing', resume=True, progress=False), FileNotFoundError, 'does not exist'),
        (lambda: fit(ToyStudyModel(dim=8), dl, cfg, tmp_path/'ok', resume=True, progress=False),   # a checkpoint of another config
         ValueError, "first mismatching key 'view_embed'"),
    ]
    for call, exc, words in cases:
        with pytest.raises(exc, match=words) as e: call()
        assert '\n' not in str(e.value), f'not one line: {e.value}'
    (ck/'model.safetensors').write_bytes((ck/'model.safetensors').read_bytes()[:200])   # truncated
    with pytest.raises(ValueError, match='truncated') as e: fit(ToyStudyModel(), dl, cfg, tmp_path/'ok', resume=True, progress=False)
    assert '\n' not in str(e.value)

# ---------------------------------------------------------------- the CXR-BERT stand-in: section matching (RSM)
def test_rsm_trains_the_cls_projection_and_matches_sections():
    "Findings↔impression InfoNCE leaves the collapsed start (loss log B), and trains only BERT + the [CLS] projection."
    import math
    from alta_nb.data import train_tokenizer
    from alta_nb.text import build_text_tower
    from alta_nb.stages import rsm_pretrain
    from alta_nb.core import seed_everything
    words = ['cardiomegaly', 'effusion', 'pneumothorax', 'atelectasis', 'edema', 'nodule', 'fracture', 'consolidation']
    pairs = [(f'There is {w}. No other finding. The mediastinal contours are normal.', f'{w.capitalize()}.') for w in words]
    cfg = get_config('smoke', lr=1e-2)      # from random init a tiny BERT needs a high lr to leave the collapse
    tok = train_tokenizer([t for p in pairs for t in p], vocab_size=200)
    seed_everything(0)
    tower = build_text_tower(cfg, tok, adapters=False)
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: losses = rsm_pretrain(tower, tok, pairs, cfg, steps=100, batch_size=8, negation_weight=0.0)   # section matching alone
    finally: torch.set_num_threads(n)
    assert len(losses) == 100 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-10:]) / 10 < 0.8 * math.log(8), losses[-10:]
    after = tower.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert any(k.startswith('cls_projection_head.') for k in changed) and any(k.startswith('mlm.bert.encoder.') for k in changed)
    assert not any(k.startswith('local_projection_head.') for k in changed), sorted(changed)[:5]

def test_text_stand_in_is_cached_and_checks_its_reports(tmp_path, monkeypatch):
    "The RSM stand-in trains once per config (second call loads it) and a missing data root says where it looked."
    from alta_nb.stages import text_stand_in, model_dir, section_pairs
    monkeypatch.setenv('ALTA_DATA', str(tmp_path))
    cfg = get_config('smoke', text_rsm_steps=5)
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try:
        a = text_stand_in(cfg)
        f = model_dir(cfg, 'text_rsm')/'model.safetensors'
        t0 = f.stat().st_mtime_ns
        b = text_stand_in(cfg)
    finally: torch.set_num_threads(n)
    assert f.stat().st_mtime_ns == t0 and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith('cls_projection_head.') for k in a) and any(k.startswith('mlm.bert.') for k in a)
    assert model_dir(cfg, 'text_rsm') != model_dir(cfg.replace(text_rsm_steps=6), 'text_rsm')
    assert model_dir(cfg, 'mrm') == model_dir(cfg.replace(text_rsm_steps=6, epochs=9, n_views=1), 'mrm')   # one MRM per seed
    with pytest.raises(FileNotFoundError, match='no_such_root'):
        section_pairs(cfg.replace(data_root=str(tmp_path/'no_such_root')))
