"The Learner and its callbacks: each concern of the loop checked on its own, against hand-made expectations."
import math
import pytest, torch
from torch.utils.data import DataLoader, default_collate
from alta_nb.core import get_config, seed_everything
from alta_nb.learner import (Learner, Callback, EVENTS, ToyStudies, ToyStudyModel, ScheduleCB, ClipCB, NaNStopCB, HistoryCB,
                             ProgressCB, EvalCB, LambdaCB)
from alta_nb.scaling import MixedPrecisionCB, AccumulateCB, DDPCB; from alta_nb.stability import CheckpointCB, HeadCentringCB; from alta_nb.train import fit

def toy(tmp_path, **kw):
    cfg = get_config('smoke', batch_size=8, epochs=2, lr=3e-3, warmup_epochs=0.5, ckpt_every=0, keep_ckpts=2, device='cpu').replace(**kw)
    return cfg, DataLoader(ToyStudies(64, seed=0), batch_size=8, collate_fn=default_collate)

class Spy(Callback):
    "Records, at `before_update` (after clipping), the lr and the global grad norm; counts every event."
    order = 45
    def __init__(self): self.lrs, self.norms, self.events = [], [], []
    def __getattr__(self, name):
        if name in EVENTS: return lambda learn: self.events.append(name)
        raise AttributeError(name)
    def before_update(self, learn):
        self.events.append('before_update'); self.lrs.append(learn.opt.param_groups[0]['lr'])
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in learn.model.parameters() if p.grad is not None]))))

def test_events_fire_in_loop_order(tmp_path):
    cfg, dl = toy(tmp_path, max_steps=2)
    spy = Spy(); Learner(ToyStudyModel(), dl, cfg, tmp_path, [spy]).fit()
    step = ['before_step', 'after_loss', 'after_backward', 'before_update', 'after_update', 'after_step']
    assert spy.events == ['before_fit', 'before_train', *step, *step, 'after_fit', 'cleanup_fit']

def test_schedule_warmup_then_cosine(tmp_path):
    cfg, dl = toy(tmp_path, epochs=4, warmup_epochs=1)            # 8 steps per epoch: 8 warm-up steps, 32 in all
    spy = Spy(); Learner(ToyStudyModel(), dl, cfg, tmp_path, [ScheduleCB(), spy]).fit()
    want = [cfg.lr * (s + 1) / 8 if s < 8 else cfg.lr * 0.5 * (1 + math.cos(math.pi * (s - 8) / 24)) for s in range(32)]
    assert spy.lrs == pytest.approx(want, rel=1e-12)

def test_clip_bounds_the_update_gradient(tmp_path):
    cfg, dl = toy(tmp_path, grad_clip=1e-3, epochs=1)
    spy = Spy(); learn = Learner(ToyStudyModel(), dl, cfg, tmp_path, [ClipCB(), spy]).fit()
    assert max(spy.norms) <= 1e-3 * 1.0001 and float(learn.grad_norm) > 1e-3
    spy = Spy(); Learner(ToyStudyModel(), dl, cfg, tmp_path/'b', [spy]).fit()
    assert max(spy.norms) > 1e-3                                   # without the callback nothing clips

def test_nan_stops_before_the_weights_change(tmp_path):
    class Bad(ToyStudyModel):
        def forward(self, batch):
            out = super().forward(batch); out['loss'] = out['loss'] * float('nan'); return out
    cfg, dl = toy(tmp_path)
    seed_everything(0); m = Bad(); before = [p.detach().clone() for p in m.parameters()]
    prog = ProgressCB(show=True)
    with pytest.raises(FloatingPointError, match=r'non-finite loss nan at step 0 \(epoch 0, micro-batch 0\); last good checkpoint: none'):
        Learner(m, dl, cfg, tmp_path, [NaNStopCB(), prog]).fit()
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
    assert prog.bar.disable                                        # tqdm marks a closed bar disabled: cleanup_fit ran

def test_history_rows_and_metrics_csv(tmp_path):
    cfg, dl = toy(tmp_path)
    learn = Learner(ToyStudyModel(), dl, cfg, tmp_path, [ScheduleCB(), HistoryCB()]).fit()
    rows = (tmp_path/'metrics.csv').read_text().splitlines()
    assert len(learn.history) == 16 and len(rows) == 17 and rows[0].startswith('step,epoch,lr,loss,global_loss,grad_norm')
    assert [r['epoch'] for r in learn.history] == [0] * 8 + [1] * 8
    assert all(r['images_per_s'] > 0 for r in learn.history)

def test_eval_every_and_at_the_end(tmp_path):
    cfg, dl = toy(tmp_path, eval_every=5)
    calls = []
    learn = Learner(ToyStudyModel(), dl, cfg, tmp_path, [EvalCB(lambda m: calls.append(m.training) or {'x': 1.0})]).fit()
    assert [e['step'] for e in learn.evals] == [5, 10, 15, 16] and calls == [False] * 4   # eval mode inside
    assert learn.model.training

def test_accumulation_runs_micro_batches(tmp_path):
    cfg, dl = toy(tmp_path, accum_steps=4, epochs=1)
    spy = Spy(); learn = Learner(ToyStudyModel(), dl, cfg, tmp_path, [AccumulateCB(), spy]).fit()
    assert learn.step == 8 and spy.events.count('after_loss') == 32 and learn.n_micro == 4
    with pytest.raises(ValueError, match='batch_size 8 is not divisible by accum_steps 3'):
        Learner(ToyStudyModel(), dl, cfg.replace(accum_steps=3), tmp_path, [AccumulateCB()]).fit()

def test_mixed_precision_only_on_cuda(tmp_path):
    cfg, dl = toy(tmp_path)
    learn = Learner(ToyStudyModel(), dl, cfg, tmp_path, [MixedPrecisionCB()])
    MixedPrecisionCB().before_fit(learn)
    assert learn.scaler is None and isinstance(learn.autocast(), type(learn.no_sync()))   # CPU: fp32, nothing swapped
    learn.device = torch.device('cuda')                          # what the callback does on a GPU (no GPU needed to look)
    MixedPrecisionCB().before_fit(learn)
    ac = learn.autocast()
    assert isinstance(ac, torch.autocast) and ac.fast_dtype == torch.bfloat16 and not learn.scaler.is_enabled()

def test_ddp_single_process_is_transparent(tmp_path):
    cfg, dl = toy(tmp_path, max_steps=3)
    seed_everything(0); a = Learner(ToyStudyModel(keep=1.0), dl, cfg, tmp_path/'a', [DDPCB(), HistoryCB()]).fit()
    seed_everything(0); b = Learner(ToyStudyModel(keep=1.0), dl, cfg, tmp_path/'b', [HistoryCB()]).fit()
    assert (a.rank, a.world) == (0, 1) and a.net is a.model
    assert [r['loss'] for r in a.history] == [r['loss'] for r in b.history]

def test_checkpoint_resume_is_exact(tmp_path):
    cfg, dl = toy(tmp_path, ckpt_every=5)
    def run(d, resume):
        seed_everything(0); m = ToyStudyModel()
        return m, Learner(m, dl, cfg, d, [CheckpointCB(resume), ScheduleCB(), HistoryCB()]).fit()
    full_m, full = run(tmp_path/'full', False)
    import shutil; shutil.copytree(tmp_path/'full', tmp_path/'cut')
    from alta_nb.stability import list_checkpoints
    assert [p.name for p in list_checkpoints(tmp_path/'cut')] == ['ckpt_00000015', 'ckpt_00000016']
    shutil.rmtree(list_checkpoints(tmp_path/'cut')[-1])          # died after step 15
    cut_m, cut = run(tmp_path/'cut', True)
    assert cut.resumed and [r['loss'] for r in cut.history] == [r['loss'] for r in full.history]
    assert all(torch.equal(a, b) for a, b in zip(full_m.state_dict().values(), cut_m.state_dict().values()))

def test_head_centring_moves_only_the_start(tmp_path):
    from alta_nb.alta import build_model
    from alta_nb.data import study_dataloader, get_tokenizer
    cfg = get_config('smoke', device='cpu', head_init='centered')
    dl = study_dataloader(cfg, split='train')
    seed_everything(0); model = build_model(cfg, 'alta', tokenizer=get_tokenizer(cfg), device='cpu')
    bias = model.image_projection_head.dense_to_hidden.bias.detach().clone()
    learn = Learner(model, dl, cfg, tmp_path, [HeadCentringCB()])
    learn('before_fit'); learn._setup(); learn('before_train')
    assert not torch.equal(bias, model.image_projection_head.dense_to_hidden.bias)
    seed_everything(0); other = build_model(cfg, 'alta', tokenizer=get_tokenizer(cfg), device='cpu')
    learn = Learner(other, dl, cfg.replace(head_init='default'), tmp_path, [HeadCentringCB()])
    learn('before_fit'); learn._setup(); learn('before_train')
    assert torch.equal(bias, other.image_projection_head.dense_to_hidden.bias)   # the official init is left alone

def test_fit_is_short_and_assembles_every_concern(tmp_path):
    import inspect
    from alta_nb import learner, train
    assert len(inspect.getsource(learner.Learner.fit).splitlines()) <= 30
    assert len(inspect.getsource(train.fit).splitlines()) <= 30
    cfg, dl = toy(tmp_path, max_steps=2)
    seen = []
    res = fit(ToyStudyModel(), dl, cfg, tmp_path, progress=False, on_step=lambda s, r: seen.append(s))
    assert seen == [1, 2] and res['steps'] == 2 and (tmp_path/'train_result.json').exists()

# --- fidelity to the official loop (issue #14: D1, D2, D3, D5)

def test_schedule_official_warmup_starts_at_zero(tmp_path):
    cfg, dl = toy(tmp_path, epochs=4, warmup_epochs=1.5, schedule_rule='official')   # 12 warm-up steps of 32, unrounded
    spy = Spy(); Learner(ToyStudyModel(), dl, cfg, tmp_path, [ScheduleCB(), spy]).fit()
    # util/lr_sched.py: lr * e / warmup_epochs, then the half cosine over (e - warmup) / (epochs - warmup), e = fractional epoch
    e = [s / 8 for s in range(32)]
    want = [cfg.lr * x / 1.5 if x < 1.5 else cfg.lr * 0.5 * (1 + math.cos(math.pi * (x - 1.5) / (4 - 1.5))) for x in e]
    assert spy.lrs[0] == 0.0 and spy.lrs == pytest.approx(want, rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match='schedule_rule'): Learner(ToyStudyModel(), dl, cfg.replace(schedule_rule='x'), tmp_path, [ScheduleCB()]).fit()

def test_decay_rules_on_the_alta_model():
    from alta_nb.alta import build_model
    from alta_nb.learner import param_groups
    m = build_model(get_config('smoke'), 'alta', device='cpu')
    names = {id(p): n for n, p in m.named_parameters()}
    def groups(rule): return [{names[id(p)] for p in g['params']} for g in param_groups(m, 0.05, rule)]
    kit_decay, kit_free = groups('kit')
    off_decay, off_free = groups('official')
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    # timm 0.6.13 param_groups_weight_decay: no decay iff ndim <= 1 or the name ends in '.bias'
    assert off_free == {n for n, p in m.named_parameters() if p.requires_grad and (p.ndim <= 1 or n.endswith('.bias'))}
    assert off_decay | off_free == trainable == kit_decay | kit_free
    for tok in ('image.temporal_embedding', 'image.view_embedding', 'image.vit.cls_token'):
        if tok in trainable: assert tok in kit_free and tok in off_decay, tok
    assert 'image.temporal_embedding' in trainable               # the kit's old 'time_embed' pattern missed it

def test_clamp_scales_after_every_update(tmp_path):
    from alta_nb.stability import ClampScalesCB
    cfg, dl = toy(tmp_path, max_steps=1)
    for start, want in ((5.0, math.log(100)), (-0.5, 0.0), (2.0, None)):
        seed_everything(0); m = ToyStudyModel(); m.logit_scale.data.fill_(start)
        Learner(m, dl, cfg, tmp_path, [ClampScalesCB()]).fit()
        if want is None: assert 0 < float(m.logit_scale) < math.log(100) and float(m.logit_scale) != 2.0
        else: assert float(m.logit_scale.detach()) == pytest.approx(want, abs=1e-6)
    from alta_nb import train
    assert 'ClampScalesCB()' in __import__('inspect').getsource(train.fit)   # every profile clamps

def test_fp16_scaler_runs_through_the_loop(tmp_path):
    cfg, dl = toy(tmp_path, max_steps=1, amp_dtype='fp16')
    class Inf(Callback):
        order = 30
        def before_update(self, learn): next(learn.model.parameters()).grad.fill_(float('inf'))
    seed_everything(0); m = ToyStudyModel(keep=1.0); w0 = [p.detach().clone() for p in m.parameters()]
    learn = Learner(m, dl, cfg, tmp_path, [MixedPrecisionCB(devices=('cpu',), init_scale=8.0), Inf()]).fit()
    assert all(torch.equal(a, b) for a, b in zip(w0, m.parameters())) and learn.scaler.get_scale() == 4.0
    seed_everything(0); a = ToyStudyModel(keep=1.0)
    Learner(a, dl, cfg, tmp_path, [MixedPrecisionCB(devices=('cpu',), init_scale=8.0)]).fit()
    class Fp16NoScaler(Callback):                                 # the same autocast, no scaler: a power-of-two scale is exact
        def before_fit(self, learn): learn.autocast = lambda: torch.autocast('cpu', dtype=torch.float16)
    seed_everything(0); b = ToyStudyModel(keep=1.0); Learner(b, dl, cfg, tmp_path, [Fp16NoScaler()]).fit()
    gap = max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))
    assert gap < 1e-7 and not all(torch.equal(p, q) for p, q in zip(a.parameters(), w0))
    learn = Learner(ToyStudyModel(), dl, cfg, tmp_path, [MixedPrecisionCB()]); learn.device = torch.device('cuda')
    cb = MixedPrecisionCB(); cb.before_fit(learn)                # (GradScaler disables itself without a GPU)
    assert learn.autocast().fast_dtype == torch.float16 and cb.fp16
