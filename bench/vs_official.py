"""The kit beside the official ALTA code: same weights, batches and masks, one agreement table.

    ALTA_OFFICIAL_REPO=/path/to/ALTA python bench/vs_official.py [--small] [--mutate NAME|all]

Two processes. The kit side runs here (its own venv) through the kit's own training path: the model `build_model`
makes, the `Learner` that `alta_nb.train.fit` assembles for the paper profile (its optimizer, schedule, clamp and
mixed-precision callbacks) and `StudyDataset` on a study written to disk. The official side runs the checkout at
`ALTA_OFFICIAL_REPO`, unmodified, under `--official-python` (default: the venv `make vs-official` keeps in
~/.cache/alta_nb/venv_official; timm 0.6.13, transformers 4.33.3): `model.py::ALTA`,
`engine_pretrain.py::train_one_epoch` with the optimizer, lr and loss scaler `main_pretrain.py` builds from `run.sh`'s
arguments, `pretrain_datasets.py`'s MLM rule and eval transform. They exchange safetensors files: kit weights renamed
to official names, the batches, the MAE noise and the MLM draws (both sides mask the same tokens and patches without
sharing an RNG), the kit's gradients, the frontal images. Adaptations the official code needs are made in its process,
never in its files: a CXR-BERT-shaped folder with random weights and a filler vocab (no download), a 1-process gloo
group, `missing_token` in fp32, `torch.rand` fed the saved noise, a `.module` wrapper (as DDP gives), no CUDA calls.
Nothing of the official tree is copied into the kit. The rows and their verdicts: bench/vs_official_rows.py.

`--mutate NAME` changes the kit in this process (bench/vs_official_mutations.py) and must turn the rows it guards to
DIFFERS; `--mutate all` runs every mutation and checks that every row is caught (use --small: one run per mutation).
"""
from __future__ import annotations
import argparse, contextlib, copy, json, os, subprocess, sys, tempfile, time, warnings
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import save_file, load_file

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from vs_official_rows import TOL_FWD, TOL_STEP, compare, print_table

STEP_EPOCH, SPE = 5, 2        # both sides: 2 optimizer steps, at epochs 5 and 5.5 (2 batches an epoch), lr in warm-up
LR_EPOCHS = (0.0, 0.5, 5.0, 10.0, 55.0)
OFFICIAL_PYTHON = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'alta_nb/venv_official/bin/python'

# ------------------------------------------------------------------ shared by both sides (torch only)
@contextlib.contextmanager
def fed_rand(queue: dict):
    "Within the block, `torch.rand(*shape)` returns the saved tensor for that shape (in order): both sides, same noise."
    real = torch.rand
    def rand(*size, generator=None, device=None, dtype=None, **kw):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else tuple(size)
        if shape in queue and queue[shape]: return queue[shape].pop(0).to(device or 'cpu')
        return real(*size, generator=generator, device=device, dtype=dtype, **kw)
    torch.rand = rand
    try: yield
    finally: torch.rand = real

def kit_to_official(name: str) -> str:
    "A kit parameter name → the official `model.py::ALTA` name."
    import re
    n = name
    for a, b in (('image.vit.', ''), ('image.', ''), ('image_projection_head.', 'projection_head.'),
                 ('image_local_projection_head.', 'local_projection_head.'), ('text.mlm.', 'bert_encoder.'),
                 ('text.', 'bert_encoder.'), ('decoder.embed.', 'decoder_embed.'),
                 ('decoder.blocks.', 'decoder_blocks.'), ('decoder.norm.', 'decoder_norm.'),
                 ('decoder.pred.', 'decoder_pred.')):
        if n.startswith(a): n = b + n[len(a):]; break
    n = {'decoder.mask_token': 'mask_token', 'decoder.pos_embed': 'decoder_pos_embed'}.get(n, n)
    n = re.sub(r'(encoder\.layer\.\d+)\.attention\.output\.attn_adapter\.', r'\1.attn_adapter.', n)
    n = re.sub(r'(encoder\.layer\.\d+)\.output\.mlp_adapter\.', r'\1.mlp_adapter.', n)
    return n.replace('_adapter.down.', '_adapter.D_fc1.').replace('_adapter.up.', '_adapter.D_fc2.')

def sizes(small: bool) -> dict:
    "Widths of both models (paper = ViT-B/16 + BERT-base; small = the same code with narrow, shallow towers)."
    if small: return dict(vit_dim=128, vit_depth=2, vit_heads=2, decoder_dim=128, decoder_depth=1, decoder_heads=2,
                          text_dim=128, text_layers=2, text_heads=2, text_intermediate=512)
    return dict(vit_dim=768, vit_depth=12, vit_heads=12, decoder_dim=768, decoder_depth=4, decoder_heads=6,
                text_dim=768, text_layers=12, text_heads=12, text_intermediate=3072)

# ------------------------------------------------------------------ the official side (its own venv)
def official_args(repo: Path):
    """`run.sh`'s arguments parsed by `main_pretrain.py::get_args_parser` (compiled from its source: importing the
    module would need tensorboard, pydicom, cv2), `args.lr` as `main` sets it, and the AdamW betas written in `main`."""
    import ast, re, shlex
    tree = ast.parse((repo / 'main_pretrain.py').read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'get_args_parser')
    ns = {'argparse': argparse}
    exec(compile(ast.Module([fn], type_ignores=[]), str(repo / 'main_pretrain.py'), 'exec'), ns)
    sh = (repo / 'run.sh').read_text().replace('\\\n', ' ')
    world = int(re.search(r'--nproc_per_node[= ](\d+)', sh).group(1))
    args = ns['get_args_parser']().parse_args(shlex.split(sh.split('main_pretrain.py', 1)[1].split('\n')[0]))
    if args.lr is None: args.lr = args.blr * args.batch_size * args.accum_iter * world / 256   # main(): blr·batch/256
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'main')
    adamw = next(c for c in ast.walk(main) if isinstance(c, ast.Call) and getattr(c.func, 'attr', '') == 'AdamW')
    return args, ast.literal_eval(next(k.value for k in adamw.keywords if k.arg == 'betas'))

def official_side(work: Path, repo: Path, small: bool):
    import torch.nn as nn, torch.distributed as dist
    from functools import partial
    s, vocab = sizes(small), 30522
    bert = work / 'BiomedVLP-CXR-BERT-specialized'          # the name `model.py`/`cxrbert.py` load from the cwd
    bert.mkdir(exist_ok=True)
    specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    (bert / 'vocab.txt').write_text('\n'.join(specials + [f'tok{i}' for i in range(vocab - 5)]) + '\n')
    (bert / 'tokenizer_config.json').write_text(json.dumps(dict(do_lower_case=True)))
    cfg = dict(model_type='cxr-bert', architectures=['CXRBertModel'], vocab_size=vocab, hidden_size=s['text_dim'],
               num_hidden_layers=s['text_layers'], num_attention_heads=s['text_heads'],
               intermediate_size=s['text_intermediate'], max_position_embeddings=512, hidden_act='gelu',
               layer_norm_eps=1e-12, pad_token_id=0, type_vocab_size=2, hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1, projection_size=128)
    (bert / 'config.json').write_text(json.dumps(cfg))
    os.chdir(work); sys.path.insert(0, str(repo))
    if not dist.is_initialized():
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', str(29500 + os.getpid() % 1000))
        dist.init_process_group('gloo', rank=0, world_size=1)
    import cxrbert, model as official, pretrain_datasets, engine_pretrain
    from util import trainable_params, lr_sched, misc
    from util.misc import NativeScalerWithGradNormCount as NativeScaler
    import timm.optim.optim_factory as optim_factory
    if not (bert / 'pytorch_model.bin').exists() and not (bert / 'model.safetensors').exists():
        bert_cfg = cxrbert.CXRBertConfig(**{k: v for k, v in cfg.items() if k not in ('model_type', 'architectures')})
        cxrbert.CXRBertModel(bert_cfg).save_pretrained(bert)
    args, betas = official_args(repo)
    m = official.ALTA(patch_size=16, in_chans=3, embed_dim=s['vit_dim'], depth=s['vit_depth'], num_heads=s['vit_heads'],
                      decoder_embed_dim=s['decoder_dim'], decoder_depth=s['decoder_depth'],
                      decoder_num_heads=s['decoder_heads'], mlp_ratio=4, norm_layer=partial(nn.LayerNorm, eps=1e-6),
                      norm_pix_loss=args.norm_pix_loss, args=argparse.Namespace(rank=0, world_size=1))
    m.missing_token.data = m.missing_token.data.float()     # fp16 only works under CUDA autocast
    out = {f'init.{k}': getattr(m, k).detach().clone() for k in ('pos_embed', 'decoder_pos_embed')}
    trainable_params.mark_only_ALTA_as_trainable(m)
    named = dict(m.named_parameters())
    kit = load_file(str(work / 'weights.safetensors'))
    def load_kit_weights():
        with torch.no_grad():
            for k, v in kit.items():
                if k in named: named[k].copy_(v)
    load_kit_weights()
    def new_opt():      # main_pretrain.py::main: timm's weight-decay groups, AdamW(lr=args.lr, betas as written there)
        return torch.optim.AdamW(optim_factory.param_groups_weight_decay(m, args.weight_decay), lr=args.lr, betas=betas)
    opt, trainable = new_opt(), sorted(n for n, p in named.items() if p.requires_grad)
    pid = {id(p): n for n, p in named.items()}
    info = dict(n_params=sum(p.numel() for p in named.values()), n_trainable=sum(named[n].numel() for n in trainable),
                trainable=trainable, missing=sorted(set(named) - set(kit)), unexpected=sorted(set(kit) - set(named)),
                decay=sorted(pid[id(p)] for g in opt.param_groups if g['weight_decay'] > 0 for p in g['params']))
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1)
    info['lr_curve'] = [lr_sched.adjust_learning_rate(sgd, e, args) for e in LR_EPOCHS]
    for mod in m.modules():                                   # dropout off on both sides: a deterministic comparison
        if isinstance(mod, nn.Dropout): mod.p = 0.0
    def batch_of(b):
        bt = load_file(str(work / f'batch{b}.safetensors'))
        return dict(img=bt['hires'], a_img=bt['images'][:, 1], l_img=bt['images'][:, 2], la_img=bt['images'][:, 3],
                    inputs=bt['masked'], labels=bt['labels'], ids=bt['input_ids'], attention_mask=bt['attention_mask'],
                    noise=bt['noise'])
    cap = {}
    def enc(*a, **k):
        r = type(m).forward_encoder(m, *a, **k); cap['cls'], cap['patches'] = r[0], r[1]; return r
    m.forward_encoder = enc
    hooks = [m.projection_head.register_forward_hook(lambda mod, i, o: cap.__setitem__('img_proj', o)),
             m.decoder_pred.register_forward_hook(lambda mod, i, o: cap.__setitem__('pred', o[:, 1:])),
             m.bert_encoder.cls_projection_head.register_forward_hook(lambda mod, i, o: cap.__setitem__('txt_proj', o)),
             m.bert_encoder.cls.register_forward_hook(lambda mod, i, o: cap.__setitem__('logits', o))]
    def forward(batch, mask_ratio):
        batch = dict(batch); noise = batch.pop('noise')
        with fed_rand({tuple(noise.shape): [noise]}): return m(batch, mask_ratio=mask_ratio)
    def keep(b, losses):
        for k, v in cap.items(): out[f'b{b}.{k}'] = v.detach().float().contiguous()
        for k, v in zip(('global_loss', 'local_loss', 'mae_loss', 'mlm_loss'), losses):
            out[f'b{b}.{k}'] = v.detach().reshape(1)
    t0 = time.perf_counter()
    with torch.no_grad(): keep(1, forward(batch_of(1), args.mask_ratio)[0])    # batch 1 at the initial weights
    info['time_fwd'] = time.perf_counter() - t0

    class Net(nn.Module):       # what DDP gives the loop: `.module` (engine_pretrain clamps model.module.logit_scale*)
        def __init__(self, fwd):
            super().__init__(); self.module, self.fwd, self.entries = m, fwd, []
        def forward(self, batch, mask_ratio):   # entry i: the weights step i-1 (and its clamp) left
            self.entries.append((time.perf_counter(), {n: named[n].detach().clone() for n in trainable}))
            return self.fwd(batch, mask_ratio)
    amp = []
    class Autocast(torch.cuda.amp.autocast):   # records what the loop asks for (disabled on this CPU, as the kit's)
        def __init__(self, *a, **k): super().__init__(*a, **k); amp.append([self.device, str(self.fast_dtype)])
    def run_loop(net, loader, opt):
        "engine_pretrain.py::train_one_epoch over `loader` at epoch STEP_EPOCH; returns (lr, grads) at each step."
        seen, scaler = [], NativeScaler()                     # main_pretrain.py: loss_scaler = NativeScaler()
        h = opt.register_step_pre_hook(lambda o, a, k: seen.append((o.param_groups[0]['lr'], {
            n: p.grad.detach().clone() for n, p in named.items() if p.grad is not None})))
        # no GPU here: `synchronize` a no-op, the metric logger's end-of-epoch sync (a CUDA tensor) skipped (1 process)
        cuda, amp_mod, sync = torch.cuda, torch.cuda.amp, misc.is_dist_avail_and_initialized
        real = amp_mod.autocast, cuda.synchronize
        amp_mod.autocast, cuda.synchronize, misc.is_dist_avail_and_initialized = Autocast, lambda *a: None, bool
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                engine_pretrain.train_one_epoch(net, loader, opt, torch.device('cpu'), STEP_EPOCH, scaler, args=args)
        finally:
            (amp_mod.autocast, cuda.synchronize), misc.is_dist_avail_and_initialized = real, sync
            h.remove()
        info['scaler'] = isinstance(scaler._scaler, torch.amp.GradScaler)
        return seen
    caps = []
    def forward_kept(batch, mr):
        r = forward(batch, mr); caps.append((dict(cap), r[0])); return r
    net = Net(forward_kept)
    seen = run_loop(net, [batch_of(0), batch_of(1)], opt)      # the official loop on the kit's two batches
    cap.clear(); cap.update(caps[0][0]); keep(0, caps[0][1])
    for h in hooks: h.remove()
    del m.forward_encoder
    info['amp'] = amp[0] + [info['scaler']]
    out.update({f'step1.{n}': v.contiguous() for n, v in net.entries[1][1].items()})
    t0 = time.perf_counter()
    run_loop(Net(forward), [batch_of(1)], opt)                  # a third, warm step on batch 1: the timing
    info['time_step'] = time.perf_counter() - t0
    out.update({f'grad.{n}': g.contiguous() for n, g in seen[0][1].items()})
    kg = load_file(str(work / 'kit_grads.safetensors'))    # the same two steps from the kit's gradients: the loop alone
    load_kit_weights()
    grads = [{k.split('.', 1)[1]: v for k, v in kg.items() if k.startswith(f'{i}.')} for i in range(SPE)]
    z = torch.zeros(())
    surrogate = Net(lambda i, mr: ((sum((named[n] * g).sum() for n, g in grads[i].items() if n in named), z, z, z),
                                   None, None))            # d/dp Σ p·g = g exactly: the loop steps from the kit's grads
    o2 = new_opt()
    info['opt'] = dict(lr=[lr for lr, _ in run_loop(surrogate, list(range(SPE)), o2)],
                       betas=list(o2.param_groups[0]['betas']), wd=sorted({g['weight_decay'] for g in o2.param_groups}))
    out.update({f'step2_kitgrad.{n}': named[n].detach().clone().contiguous() for n in trainable})
    stub = argparse.Namespace(tokenizer=cxrbert.CXRBertTokenizer.from_pretrained(str(bert)))   # the dataset's MLM rule
    mr = load_file(str(work / 'mlm_reports.safetensors'))
    real_bernoulli, draws = torch.bernoulli, [mr['draw']]
    torch.bernoulli = lambda p, *a, **k: (draws.pop(0) < p).to(p.dtype) if draws else real_bernoulli(p, *a, **k)
    try: out['mlm.masked'], out['mlm.labels'] = pretrain_datasets.ALTADataset._random_mask(stub, mr['ids'].clone())
    finally: torch.bernoulli = real_bernoulli
    # the frontal: the dataset's eval transform (its Grayscale/ToTensor/Normalize: the image is 448² already), then
    # model.py::forward's own resize, read off as the first argument it passes to forward_encoder
    from PIL import Image
    fr = load_file(str(work / 'frontal.safetensors'))
    tf = pretrain_datasets.ALTADataset._build_transform(argparse.Namespace(is_train=False), 'big').transforms
    tail = [t for t in tf if type(t).__name__ in ('Grayscale', 'ToTensor', 'Normalize')]
    x = Image.fromarray(fr['hi_u8'].numpy())
    for t in tail: x = t(x)
    class Stop(Exception): pass
    def resized(img448):
        def stop(img, *a, **k): raise Stop(img)
        m.forward_encoder = stop
        try: m(dict.fromkeys(('img', 'a_img', 'l_img', 'la_img', 'inputs', 'labels', 'ids', 'attention_mask'), img448))
        except Stop as e: return e.args[0][0]
        finally: del m.forward_encoder
    out['frontal.small'], out['frontal.study'] = resized(x[None]), resized(fr['study_hires'][None])
    save_file({k: v.contiguous() for k, v in out.items()}, str(work / 'official_out.safetensors'))
    (work / 'official_info.json').write_text(json.dumps(info))
    dist.destroy_process_group()

# ------------------------------------------------------------------ the kit side (this venv)
def kit_cfg(small: bool):
    from alta_nb.core import get_config
    return get_config('paper').replace(device='cpu', batch_size=2, **sizes(small))   # global batch 2: the compared one

def make_batch(cfg, b: int, seed: int) -> dict:
    "A study batch of 2: batch 0 has all four views, batch 1 lacks the laterals and one prior (all-zero views)."
    from torchvision.transforms import Resize, InterpolationMode
    g = torch.Generator().manual_seed(seed)
    B, L, S = 2, cfg.max_text_len, cfg.image_size
    hires = torch.randn(B, 3, cfg.hires_size, cfg.hires_size, generator=g)
    views = torch.randn(B, 4, 3, S, S, generator=g)
    views[:, 0] = Resize([S, S], interpolation=InterpolationMode.BICUBIC, antialias=True)(hires)  # frontal rows: same
    if b == 1: views[:, 1] = 0; views[:, 3] = 0; views[1, 2] = 0
    ids = torch.randint(5, cfg.vocab_size, (B, L), generator=g)
    n_real = torch.tensor([L, 40] if b == 0 else [17, 90])
    am = (torch.arange(L)[None] < n_real[:, None]).long()
    ids[:, 0] = 2; ids[torch.arange(B), n_real - 1] = 3; ids[am == 0] = 0
    return dict(images=views, hires=hires, input_ids=ids, attention_mask=am,
                noise=torch.rand(B * 4, (S // cfg.patch_size) ** 2, generator=g),
                mlm_draw=torch.rand(B, L, generator=g))

def kit_learner(m, cfg, run_dir):
    """The `Learner` that `alta_nb.train.fit` assembles for `cfg` (caught as its `fit` starts), less the callbacks that
    only write files or print, set up as `fit` does (`before_fit`, `_setup`: the optimizer, `before_train`); SPE steps
    an epoch."""
    import alta_nb.train as T
    from alta_nb.learner import Learner, HistoryCB, ProgressCB
    class Caught(Exception): pass
    def catch(self): raise Caught(self)
    real, Learner.fit = Learner.fit, catch
    try: T.fit(m, torch.utils.data.DataLoader(range(SPE * cfg.batch_size)), cfg, run_dir, progress=False)
    except Caught as c: learn = c.args[0]
    finally: Learner.fit = real
    io_only = (T.CheckpointCB, T.EpochWeightsCB, HistoryCB, ProgressCB)
    learn.cbs = [cb for cb in learn.cbs if not isinstance(cb, io_only)]
    learn('before_fit'); learn._setup(); learn('before_train')
    assert learn.steps_per_epoch == SPE, learn.steps_per_epoch
    return learn

def kit_side(work: Path, small: bool) -> tuple[dict, dict]:
    import numpy as np, pandas as pd, torch.nn as nn
    from PIL import Image
    import alta_nb.alta as A, alta_nb.train as T, alta_nb.images as I, alta_nb.data as D
    from alta_nb.core import seed_everything
    from alta_nb.learner import Callback, ScheduleCB
    cfg = kit_cfg(small)
    seed_everything(0)
    m = A.build_model(cfg.replace(allow_random_text=True), kind='alta')
    with torch.no_grad():      # random, but not the init's zeros/ones, so every tensor's mapping is exercised
        for n, p in m.named_parameters():
            if 'pos_embed' not in n and 'missing_token' not in n: p.add_(torch.randn_like(p) * 0.02)
        m.logit_scale_local2.fill_(-0.05); m.logit_scale_local3.fill_(4.7)   # outside [0, ln 100]: the clamp (D1) acts
    named = dict(m.named_parameters())
    save_file({kit_to_official(n): p.detach().contiguous() for n, p in named.items()},
              str(work / 'weights.safetensors'))
    for mod in m.modules():
        if isinstance(mod, nn.Dropout): mod.p = 0.0
    learn = kit_learner(m, cfg, work / 'run')
    grads, steps, lrs = [], [], []
    class Keep(Callback):     # after the loop's own clip (40) and clamp (50): the gradients used, the weights left
        order = 90
        def before_update(self, learn):
            lrs.append(learn.opt.param_groups[0]['lr'])
            grads.append({kit_to_official(n): p.grad.detach().clone() for n, p in named.items() if p.grad is not None})
        def after_update(self, learn):
            steps.append({kit_to_official(n): p.detach().clone() for n, p in named.items() if p.requires_grad})
    learn.cbs = sorted(learn.cbs + [Keep()], key=lambda cb: cb.order)
    pid, groups = {id(p): n for n, p in named.items()}, learn.opt.param_groups
    info = dict(n_params=sum(p.numel() for p in named.values()), cfg=cfg,
                n_trainable=sum(p.numel() for p in named.values() if p.requires_grad),
                trainable=sorted(kit_to_official(n) for n, p in named.items() if p.requires_grad),
                decay=sorted(kit_to_official(pid[id(p)]) for g in groups if g['weight_decay'] > 0 for p in g['params']))
    sched = copy.copy(next(cb for cb in learn.cbs if isinstance(cb, ScheduleCB)))   # D5: the loop's, 10 steps/epoch
    probe = SimpleNamespace(cfg=cfg, steps_per_epoch=10)
    probe.opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0)
    sched.before_train(probe); info['lr_curve'] = []
    for e in LR_EPOCHS:
        probe.step = round(e * 10); sched.before_step(probe); info['lr_curve'].append(probe.opt.param_groups[0]['lr'])
    # D3: what the loop's MixedPrecisionCB selects on the paper's device, CUDA. On this CPU it leaves fp32, as the
    # official `torch.cuda.amp.autocast` does (so every number below compares in fp32); this row compares the choice.
    mp, probe = copy.copy(next(cb for cb in learn.cbs if isinstance(cb, T.MixedPrecisionCB))), SimpleNamespace(cfg=cfg)
    probe.device, probe.opt = torch.device('cuda'), None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); mp.before_fit(probe)
        ac = probe.autocast() if hasattr(probe, 'autocast') else None
    scaled = bool(getattr(mp, 'fp16', False) and isinstance(getattr(probe, 'scaler', None), torch.amp.GradScaler))
    info['amp'] = [ac.device, str(ac.fast_dtype), scaled] if ac else ['cpu', 'torch.float32', False]
    out, real_mask, cap = {}, A.mask_report_tokens, {}
    def mask(*a, **k):
        r = real_mask(*a, **k); cap['masked'], cap['labels'] = r; return r
    A.mask_report_tokens = mask
    hooks = [m.image.register_forward_hook(lambda mod, i, o: cap.update(cls=o['cls'],
                                                                         patches=o['patches'].flatten(1, 2))),
             m.image_projection_head.register_forward_hook(lambda mod, i, o: cap.__setitem__('img_proj', o)),
             m.decoder.register_forward_hook(lambda mod, i, o: cap.__setitem__('pred', o)),
             m.text.cls_projection_head.register_forward_hook(lambda mod, i, o: cap.setdefault('txt_proj', o)),
             m.text.mlm.cls.register_forward_hook(lambda mod, i, o: cap.__setitem__('logits', o))]
    bts = [make_batch(cfg, b, seed=b + 1) for b in (0, 1)]
    feed = lambda bt: fed_rand({tuple(bt['noise'].shape): [bt['noise']], tuple(bt['mlm_draw'].shape): [bt['mlm_draw']]})
    inputs = lambda bt: {k: bt[k] for k in ('images', 'hires', 'input_ids', 'attention_mask')}
    def keep(b, o):
        for k in ('cls', 'patches', 'img_proj', 'pred', 'txt_proj', 'logits'):
            out[f'b{b}.{k}'] = cap[k].detach().float()
        for k in ('global_loss', 'local_loss', 'mae_loss', 'mlm_loss'): out[f'b{b}.{k}'] = o[k].detach().reshape(1)
        bt = bts[b]
        save_file(dict(images=bt['images'], hires=bt['hires'], input_ids=bt['input_ids'], noise=bt['noise'],
                       attention_mask=bt['attention_mask'], masked=cap['masked'], labels=cap['labels']),
                  str(work / f'batch{b}.safetensors'))
        cap.clear()
    t0 = time.perf_counter()
    with feed(bts[1]), torch.no_grad(): o = m(inputs(bts[1]))          # batch 1 at the initial weights
    info['time_fwd'] = time.perf_counter() - t0
    keep(1, o)
    learn.step, learn.epoch, learn.start = STEP_EPOCH * SPE, STEP_EPOCH, 0    # where a run resumed at epoch 5 stands
    learn.batches = iter([inputs(bts[0]), inputs(bts[1])])
    with feed(bts[0]): learn.one_step()                                  # the loop's own step: batch 0 ...
    keep(0, learn.out)
    for h in hooks: h.remove()
    with feed(bts[1]): learn.one_step()                                  # ... then batch 1
    learn.batches, t0 = iter([inputs(bts[1])]), time.perf_counter()
    with feed(bts[1]): learn.one_step()                                  # a third, warm step on batch 1: the timing
    info['time_step'] = time.perf_counter() - t0
    A.mask_report_tokens = real_mask
    out.update({f'grad.{n}': g for n, g in grads[0].items()})
    out.update({f'step{i + 1}.{n}': v for i in range(SPE) for n, v in steps[i].items()})
    save_file({f'{i}.{n}': g.contiguous() for i, gs in enumerate(grads[:SPE]) for n, g in gs.items()},
              str(work / 'kit_grads.safetensors'))
    info['opt'] = dict(lr=lrs[:SPE], betas=list(groups[0]['betas']), wd=sorted({g['weight_decay'] for g in groups}))
    g = torch.Generator().manual_seed(7)                      # 4,000 reports for the MLM rule, specials inside too
    R, L = 4000, cfg.max_text_len
    ids = torch.randint(5, cfg.vocab_size, (R, L), generator=g)
    ids[torch.rand(R, L, generator=g) < 0.02] = 1; ids[torch.rand(R, L, generator=g) < 0.02] = 4
    n = torch.randint(3, L + 1, (R,), generator=g); am = (torch.arange(L)[None] < n[:, None]).long()
    ids[:, 0] = 2; ids[torch.arange(R), n - 1] = 3; ids[am == 0] = 0
    draw, sp = torch.rand(R, L, generator=g), m.text.special
    with fed_rand({(R, L): [draw]}):                          # the call ALTA.forward makes
        out['mlm.masked'], out['mlm.labels'] = A.mask_report_tokens(ids, am, cfg.mlm_prob, sp['mask'], set(sp.values()))
    save_file(dict(ids=ids, draw=draw), str(work / 'mlm_reports.safetensors'))
    # the frontal 448 → 224: `frontal_small` with the official clip=False on a 448² image, and the paper profile's
    # `StudyDataset` on a study written as PNGs: its 224² frontal beside the 448² `hires` it hands the MAE loss
    rng = np.random.default_rng(0)
    def picture(h, w):        # noise under a wrapping ramp: sharp edges, so a bicubic resize overshoots the pixel range
        a = rng.integers(0, 256, (h, w)).astype(np.uint8)
        a[: h // 2] = (np.add.outer(np.arange(h // 2), np.arange(w)) % 256).astype(np.uint8)
        return a
    hi, study = picture(cfg.hires_size, cfg.hires_size), work / 'study'
    out['frontal.small'] = torch.from_numpy(I.frontal_small(hi, cfg.image_size, clip=False))
    (study / 'files').mkdir(parents=True)
    Image.fromarray(picture(600, 530)).save(study / 'files/frontal.png')
    Image.fromarray(picture(560, 480)).save(study / 'files/lateral.png')
    table = pd.DataFrame([dict(image_path='files/frontal.png', auxview_image_path='files/lateral.png',
                               last_image_path='-1', last_auxview_image_path='-1', report='No acute findings.',
                               subject_id='1', study_id='1')])
    tok = lambda text, truncation, max_length: dict(input_ids=[2, 3], attention_mask=[1, 1])   # the images are compared
    ds = D.StudyDataset(table, study, cfg, tok, train=False, cache=False)
    item, info['study_clip'] = ds[0], ds.clip_frontal
    out['frontal.study'] = item['images'][0]
    save_file(dict(hi_u8=torch.from_numpy(hi), study_hires=item['hires']), str(work / 'frontal.safetensors'))
    info['pos'] = {'init.pos_embed': m.image.vit.pos_embed.detach(),
                   'init.decoder_pos_embed': m.decoder.pos_embed.detach()}
    return out, info

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cpu', choices=['cpu'], help='the comparison runs on the CPU (fp32)')
    ap.add_argument('--small', action='store_true', help='narrow, shallow towers (same code paths): seconds')
    ap.add_argument('--repo', default=os.environ.get('ALTA_OFFICIAL_REPO', ''),
                    help='the official ALTA checkout (default $ALTA_OFFICIAL_REPO)')
    ap.add_argument('--official-python', default=os.environ.get('ALTA_OFFICIAL_PYTHON', str(OFFICIAL_PYTHON)),
                    help=f'python of the official venv (default $ALTA_OFFICIAL_PYTHON, else {OFFICIAL_PYTHON})')
    ap.add_argument('--mutate', default='', metavar='NAME|all',
                    help='change the kit in this process (bench/vs_official_mutations.py); `all`: each in turn')
    ap.add_argument('--side', default='kit', choices=['kit', 'official'], help=argparse.SUPPRESS)
    ap.add_argument('--work', default='', help=argparse.SUPPRESS)
    ap.add_argument('--rows-json', default='', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.side == 'official': return official_side(Path(a.work), Path(a.repo), a.small)
    repo = Path(a.repo)
    if not a.repo or not (repo / 'model.py').is_file():
        sys.exit(f"ALTA_OFFICIAL_REPO={a.repo!r}: not an ALTA checkout (no model.py); "
                 "clone github.com/DopamineLcy/ALTA yourself and point the variable at it")
    if not Path(a.official_python).is_file():
        sys.exit(f"{a.official_python}: no official venv; run `make vs-official` (it builds "
                 f"{OFFICIAL_PYTHON.parents[1]} with timm 0.6.13, transformers 4.33.3) or set ALTA_OFFICIAL_PYTHON")
    import vs_official_mutations as M
    if a.mutate == 'all': return M.run_all(HERE, a)
    if a.mutate: M.apply(a.mutate)
    with tempfile.TemporaryDirectory(prefix='alta_vs_official_') as tmp:
        work = Path(tmp)
        kit, kinfo = kit_side(work, a.small)
        env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONPATH='', PYTHONDONTWRITEBYTECODE='1')
        cmd = [a.official_python, str(HERE), '--side', 'official', '--work', str(work), '--repo', str(repo.resolve())]
        r = subprocess.run(cmd + (['--small'] if a.small else []), env=env, capture_output=True, text=True)
        if r.returncode: sys.exit(f"official side failed (rc {r.returncode}):\n{r.stderr[-3000:]}")
        off = load_file(str(work / 'official_out.safetensors'))
        oinfo = json.loads((work / 'official_info.json').read_text())
    rows = compare(kit, kinfo, off, oinfo)
    print(f"ALTA kit vs official ({'small' if a.small else 'paper'} size, CPU fp32, batch 2, dropout off; tensors and "
          f"losses within {TOL_FWD:g}·max(1, max |x|), steps within {TOL_STEP:g})"
          + (f"; KIT MUTATED: {a.mutate}" if a.mutate else '') + '\n')
    print_table(rows, (kinfo['time_step'], oinfo['time_step'], kinfo['time_fwd'], oinfo['time_fwd']))
    if a.rows_json: Path(a.rows_json).write_text(json.dumps([[r[0], r[3]] for r in rows]))
    return 0 if all(r[3] == 'match' for r in rows) else 1

if __name__ == '__main__': sys.exit(main())
