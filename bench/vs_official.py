"""The kit beside the official ALTA code: same weights, batch and masks, one agreement table.

    ALTA_OFFICIAL_REPO=/path/to/ALTA python bench/vs_official.py --device cpu [--small]

Two processes: the kit runs here (its own venv); the official model runs from the checkout at `ALTA_OFFICIAL_REPO`,
unmodified, under `--official-python` (default `.venv_official/bin/python`, built by `make vs-official`: timm 0.6.13,
transformers 4.33.3). They exchange safetensors files: kit weights renamed to official names, the batch, the MAE
noise and the MLM draws (so both sides mask the same tokens and patches without sharing an RNG). Every adaptation the
official code needs is made here, never in its files: a temp CXR-BERT-shaped folder with random weights and a
filler vocab (no download), a 1-process gloo group (its losses always all-gather), `missing_token` cast to fp32,
and `torch.rand` fed the saved noise while its forward runs. Nothing of the official tree is copied into the kit.
"""
from __future__ import annotations
import argparse, contextlib, json, math, os, subprocess, sys, tempfile, time
from pathlib import Path

import torch
from safetensors.torch import save_file, load_file

TOL_FWD, TOL_STEP = 4e-6, 1e-7
HERE = Path(__file__).resolve()

# ------------------------------------------------------------------ shared by both sides (torch only)
@contextlib.contextmanager
def fed_rand(queue: dict):
    "Within the block, `torch.rand(*shape)` returns the saved tensor for that shape (in order) — both sides draw the same noise."
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
                 ('text.', 'bert_encoder.'), ('decoder.embed.', 'decoder_embed.'), ('decoder.blocks.', 'decoder_blocks.'),
                 ('decoder.norm.', 'decoder_norm.'), ('decoder.pred.', 'decoder_pred.')):
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
def official_side(work: Path, repo: Path, small: bool):
    import numpy as np
    from argparse import Namespace
    from functools import partial
    import torch.nn as nn, torch.distributed as dist
    s, vocab = sizes(small), 30522
    bert = work / 'BiomedVLP-CXR-BERT-specialized'          # the name `model.py`/`cxrbert.py` load from the cwd
    bert.mkdir(exist_ok=True)
    specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    (bert / 'vocab.txt').write_text('\n'.join(specials + [f'tok{i}' for i in range(vocab - 5)]) + '\n')
    (bert / 'tokenizer_config.json').write_text(json.dumps(dict(do_lower_case=True)))
    cfg = dict(model_type='cxr-bert', architectures=['CXRBertModel'], vocab_size=vocab, hidden_size=s['text_dim'],
               num_hidden_layers=s['text_layers'], num_attention_heads=s['text_heads'], intermediate_size=s['text_intermediate'],
               max_position_embeddings=512, hidden_act='gelu', layer_norm_eps=1e-12, pad_token_id=0, type_vocab_size=2,
               hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, projection_size=128)
    (bert / 'config.json').write_text(json.dumps(cfg))
    os.chdir(work); sys.path.insert(0, str(repo))
    if not dist.is_initialized():
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1'); os.environ.setdefault('MASTER_PORT', str(29500 + os.getpid() % 1000))
        dist.init_process_group('gloo', rank=0, world_size=1)
    import cxrbert, model as official
    from util import trainable_params, lr_sched
    import timm.optim.optim_factory as optim_factory
    if not (bert / 'pytorch_model.bin').exists() and not (bert / 'model.safetensors').exists():
        cxrbert.CXRBertModel(cxrbert.CXRBertConfig(**{k: v for k, v in cfg.items() if k not in ('model_type', 'architectures')})).save_pretrained(bert)
    args = Namespace(rank=0, world_size=1)
    m = official.ALTA(patch_size=16, in_chans=3, embed_dim=s['vit_dim'], depth=s['vit_depth'], num_heads=s['vit_heads'],
                      decoder_embed_dim=s['decoder_dim'], decoder_depth=s['decoder_depth'], decoder_num_heads=s['decoder_heads'],
                      mlp_ratio=4, norm_layer=partial(nn.LayerNorm, eps=1e-6), norm_pix_loss=True, args=args)     # run.sh passes --norm_pix_loss
    m.missing_token.data = m.missing_token.data.float()     # fp16 only works under CUDA autocast
    init_pos = dict(pos_embed=m.pos_embed.detach().clone(), decoder_pos_embed=m.decoder_pos_embed.detach().clone())
    trainable_params.mark_only_ALTA_as_trainable(m)
    named = dict(m.named_parameters())
    kit = load_file(str(work / 'weights.safetensors'))
    missing = sorted(set(named) - set(kit)); unexpected = sorted(set(kit) - set(named))
    with torch.no_grad():
        for k, v in kit.items():
            if k in named: named[k].copy_(v)
    groups = optim_factory.param_groups_weight_decay(m, 0.05)
    pid = {id(p): n for n, p in named.items()}
    info = dict(n_params=sum(p.numel() for p in named.values()),
                n_trainable=sum(p.numel() for p in named.values() if p.requires_grad),
                trainable=sorted(n for n, p in named.items() if p.requires_grad),
                decay=sorted(pid[id(p)] for p in groups[1]['params'] if p.requires_grad) if groups[1]['weight_decay'] else [],
                missing=missing, unexpected=unexpected)
    lr_args = Namespace(lr=1.0, min_lr=0.0, warmup_epochs=10, epochs=100)
    info['lr_curve'] = [lr_sched.adjust_learning_rate(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1), e, lr_args)
                        for e in (0.0, 0.5, 5.0, 10.0, 55.0)]
    out = {f'init.{k}': v for k, v in init_pos.items()}
    m.train()
    for p in m.modules():                                     # dropout off on both sides: a deterministic comparison
        if isinstance(p, nn.Dropout): p.p = 0.0
    for b in (1, 0, 2):          # batch 1 forward, batch 0 forward + backward + step, then batch 0 again: a warm timed step
        bt = load_file(str(work / f'batch{b % 2}.safetensors'))
        batch = dict(img=bt['hires'], a_img=bt['images'][:, 1], l_img=bt['images'][:, 2], la_img=bt['images'][:, 3],
                     inputs=bt['masked'], labels=bt['labels'], ids=bt['input_ids'], attention_mask=bt['attention_mask'])
        if b == 0: opt = torch.optim.AdamW(groups, lr=float(bt['lr']), betas=(0.9, 0.95))
        cap = {}
        enc0 = m.forward_encoder
        def enc(*a, **k):
            r = enc0(*a, **k); cap['cls'], cap['patches'] = r[0], r[1]; return r
        m.forward_encoder = enc
        hooks = [m.projection_head.register_forward_hook(lambda mod, i, o: cap.__setitem__('img_proj', o)),
                 m.decoder_pred.register_forward_hook(lambda mod, i, o: cap.__setitem__('pred', o[:, 1:])),
                 m.bert_encoder.cls_projection_head.register_forward_hook(lambda mod, i, o: cap.__setitem__('txt_proj', o)),
                 m.bert_encoder.cls.register_forward_hook(lambda mod, i, o: cap.__setitem__('logits', o))]
        # the official mask: the first frontal of each study is the MAE target; ids_restore of the (b t) rows
        with fed_rand({tuple(bt['noise'].shape): [bt['noise']]}), torch.set_grad_enabled(b != 1):
            t0 = time.perf_counter()
            losses, _, _ = m(batch, mask_ratio=0.75)
            loss = sum(losses)
            if b != 1:
                opt.zero_grad(); loss.backward()
                if b == 0: grads = {n: p.grad.detach().clone() for n, p in named.items() if p.grad is not None}
                opt.step()
                with torch.no_grad():                          # engine_pretrain.py: clamp after every step (D1)
                    for n in ('logit_scale', 'logit_scale_local1', 'logit_scale_local2', 'logit_scale_local3'):
                        getattr(m, n).clamp_(0, math.log(100))
            info[f'time{b}'] = time.perf_counter() - t0
        for h in hooks: h.remove()
        m.forward_encoder = enc0
        if b == 2: continue
        for k, v in cap.items(): out[f'b{b}.{k}'] = v.detach().float().contiguous()
        for k, v in zip(('global_loss', 'local_loss', 'mae_loss', 'mlm_loss'), losses): out[f'b{b}.{k}'] = v.detach().reshape(1)
        if b == 0:
            for n in info['trainable']: out[f'step.{n}'] = named[n].detach().clone().contiguous()
            out.update({f'grad.{n}': g.contiguous() for n, g in grads.items()})
    import pretrain_datasets                                  # the MLM rule of the official dataset, on the kit's reports
    stub = Namespace(tokenizer=cxrbert.CXRBertTokenizer.from_pretrained(str(bert)))
    mr = load_file(str(work / 'mlm_reports.safetensors'))
    real_bernoulli, draws = torch.bernoulli, [mr['draw']]
    torch.bernoulli = lambda p, *a, **k: (draws.pop(0) < p).to(p.dtype) if draws else real_bernoulli(p, *a, **k)
    try: out['mlm.masked'], out['mlm.labels'] = pretrain_datasets.ALTADataset._random_mask(stub, mr['ids'].clone(), mask_ratio=0.5)
    finally: torch.bernoulli = real_bernoulli
    kg = load_file(str(work / 'kit_grads.safetensors'))      # the same step from the kit's gradients: the optimizer alone
    with torch.no_grad():
        for n, p in named.items():
            if n in kit: p.copy_(kit[n])
            p.grad = kg[n].clone() if n in kg else None
    opt = torch.optim.AdamW(groups, lr=float(bt['lr']), betas=(0.9, 0.95)); opt.step()
    with torch.no_grad():
        for n in ('logit_scale', 'logit_scale_local1', 'logit_scale_local2', 'logit_scale_local3'): getattr(m, n).clamp_(0, math.log(100))
    for n in info['trainable']: out[f'step_kitgrad.{n}'] = named[n].detach().clone().contiguous()
    save_file(out, str(work / 'official_out.safetensors'))
    (work / 'official_info.json').write_text(json.dumps(info))
    dist.destroy_process_group()

# ------------------------------------------------------------------ the kit side (this venv)
def kit_cfg(small: bool):
    from alta_nb.core import get_config
    return get_config('paper').replace(device='cpu', **sizes(small))

def make_batch(cfg, b: int, seed: int) -> dict:
    "A study batch of 2: batch 0 has all four views, batch 1 lacks the laterals and one prior (all-zero views)."
    from torchvision.transforms import Resize, InterpolationMode
    g = torch.Generator().manual_seed(seed)
    B, L, S = 2, cfg.max_text_len, cfg.image_size
    hires = torch.randn(B, 3, cfg.hires_size, cfg.hires_size, generator=g)
    views = torch.randn(B, 4, 3, S, S, generator=g)
    views[:, 0] = Resize([S, S], interpolation=InterpolationMode.BICUBIC, antialias=True)(hires)  # as `model.py::forward`
    if b == 1: views[:, 1] = 0; views[:, 3] = 0; views[1, 2] = 0
    ids = torch.randint(5, cfg.vocab_size, (B, L), generator=g)
    n_real = torch.tensor([L, 40] if b == 0 else [17, 90])
    am = (torch.arange(L)[None] < n_real[:, None]).long()
    ids[:, 0] = 2; ids[torch.arange(B), n_real - 1] = 3; ids[am == 0] = 0
    return dict(images=views, hires=hires, input_ids=ids, attention_mask=am,
                noise=torch.rand(B * 4, (S // cfg.patch_size) ** 2, generator=g), mlm_draw=torch.rand(B, L, generator=g))

def kit_side(work: Path, small: bool) -> dict:
    import torch.nn as nn
    import alta_nb.alta as A
    from alta_nb.core import seed_everything
    from alta_nb.learner import param_groups
    from alta_nb.train import MAX_LOGIT_SCALE
    cfg = kit_cfg(small)
    seed_everything(0)
    m = A.build_model(cfg.replace(allow_random_text=True), kind='alta')
    with torch.no_grad():      # random, but not the init's zeros/ones, so every tensor's mapping is exercised
        for n, p in m.named_parameters():
            if 'pos_embed' not in n and 'missing_token' not in n: p.add_(torch.randn_like(p) * 0.02)
        m.logit_scale_local2.fill_(-0.05); m.logit_scale_local3.fill_(4.7)   # outside [0, ln 100]: the step's clamp (D1) acts
    named = dict(m.named_parameters())
    save_file({kit_to_official(n): p.detach().contiguous() for n, p in named.items()}, str(work / 'weights.safetensors'))
    for mod in m.modules():
        if isinstance(mod, nn.Dropout): mod.p = 0.0
    groups = param_groups(m, cfg.weight_decay, cfg.decay_rule)
    pid = {id(p): n for n, p in named.items()}
    info = dict(n_params=sum(p.numel() for p in named.values()), n_trainable=sum(p.numel() for p in named.values() if p.requires_grad),
                trainable=sorted(kit_to_official(n) for n, p in named.items() if p.requires_grad),
                decay=sorted(kit_to_official(pid[id(p)]) for p in groups[0]['params']), cfg=cfg)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))
    out, real_mask = {}, A.mask_report_tokens
    for b in (1, 0, 2):          # batch 1 forward, batch 0 forward + backward + step, then batch 0 again: a warm timed step
        bt = make_batch(cfg, b % 2, seed=b % 2 + 1)
        cap = {}
        def mask(*a, **k):
            r = real_mask(*a, **k); cap['masked'], cap['labels'] = r; return r
        A.mask_report_tokens = mask
        hooks = [m.image.register_forward_hook(lambda mod, i, o: cap.update(cls=o['cls'], patches=o['patches'].flatten(1, 2))),
                 m.image_projection_head.register_forward_hook(lambda mod, i, o: cap.__setitem__('img_proj', o)),
                 m.decoder.register_forward_hook(lambda mod, i, o: cap.__setitem__('pred', o)),
                 m.text.cls_projection_head.register_forward_hook(lambda mod, i, o: cap.setdefault('txt_proj', o)),
                 m.text.mlm.cls.register_forward_hook(lambda mod, i, o: cap.__setitem__('logits', o))]
        q = {tuple(bt['noise'].shape): [bt['noise']], tuple(bt['mlm_draw'].shape): [bt['mlm_draw']]}
        with fed_rand(q), torch.set_grad_enabled(b != 1):
            t0 = time.perf_counter()
            o = m({k: bt[k] for k in ('images', 'hires', 'input_ids', 'attention_mask')})
            if b != 1:
                opt.zero_grad(); o['loss'].backward()
                for n, p in named.items():
                    if p.grad is not None and b == 0: out[f'grad.{kit_to_official(n)}'] = p.grad.detach().clone()
                opt.step()
                with torch.no_grad():                           # ClampScalesCB's rule
                    for n, p in named.items():
                        if n.rsplit('.', 1)[-1].startswith('logit_scale'): p.clamp_(0, MAX_LOGIT_SCALE)
            info[f'time{b}'] = time.perf_counter() - t0
        for h in hooks: h.remove()
        A.mask_report_tokens = real_mask
        if b == 2: continue
        for k in ('cls', 'patches', 'img_proj', 'pred', 'txt_proj', 'logits'): out[f'b{b}.{k}'] = cap[k].detach().float()
        for k in ('global_loss', 'local_loss', 'mae_loss', 'mlm_loss'): out[f'b{b}.{k}'] = o[k].detach().reshape(1)
        save_file(dict(images=bt['images'], hires=bt['hires'], input_ids=bt['input_ids'], attention_mask=bt['attention_mask'],
                       noise=bt['noise'], masked=cap['masked'], labels=cap['labels'], lr=torch.tensor(cfg.lr)),
                  str(work / f'batch{b}.safetensors'))
        if b == 0:
            for n, p in named.items():
                if p.requires_grad: out[f'step.{kit_to_official(n)}'] = p.detach().clone()
            save_file({k[5:]: v.contiguous() for k, v in out.items() if k.startswith('grad.')}, str(work / 'kit_grads.safetensors'))
    g = torch.Generator().manual_seed(7)                      # 4,000 reports for the MLM rule, specials inside the text too
    R, L = 4000, cfg.max_text_len
    ids = torch.randint(5, cfg.vocab_size, (R, L), generator=g)
    ids[torch.rand(R, L, generator=g) < 0.02] = 1; ids[torch.rand(R, L, generator=g) < 0.02] = 4
    n = torch.randint(3, L + 1, (R,), generator=g); am = (torch.arange(L)[None] < n[:, None]).long()
    ids[:, 0] = 2; ids[torch.arange(R), n - 1] = 3; ids[am == 0] = 0
    draw = torch.rand(R, L, generator=g)
    sp = m.text.special
    with fed_rand({(R, L): [draw]}): out['mlm.masked'], out['mlm.labels'] = A.mask_report_tokens(ids, am, cfg.mlm_prob, sp['mask'], set(sp.values()))
    save_file(dict(ids=ids, draw=draw), str(work / 'mlm_reports.safetensors'))
    import numpy as np                                        # the frontal 448 → 224: kit data pipeline vs `model.py::forward`
    from torchvision.transforms import Resize, InterpolationMode
    from alta_nb.images import frontal_small, normalize_np
    hi = np.random.default_rng(0).integers(0, 256, (cfg.hires_size, cfg.hires_size)).astype(np.uint8)
    hi[: cfg.hires_size // 2] = (np.add.outer(np.arange(cfg.hires_size // 2), np.arange(cfg.hires_size)) % 256).astype(np.uint8)
    theirs = Resize([cfg.image_size] * 2, interpolation=InterpolationMode.BICUBIC, antialias=True)(torch.from_numpy(normalize_np(hi))[None])[0]
    import inspect
    from alta_nb.data import StudyDataset
    clip = inspect.signature(StudyDataset).parameters['clip_frontal'].default   # None: the config decides
    clip = cfg.frontal_clip if clip is None else clip                             # what a paper-profile run uses
    info['frontal'] = [(c, maxdiff(torch.from_numpy(frontal_small(hi, cfg.image_size, clip=c)), theirs), theirs.abs().max().item())
                       for c in (False, clip)]
    info['pos'] = {'init.pos_embed': m.image.vit.pos_embed.detach(), 'init.decoder_pos_embed': m.decoder.pos_embed.detach()}
    return out, info

# ------------------------------------------------------------------ the table
def maxdiff(a, b) -> float:
    if a.shape != b.shape: return float('inf')
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0

def compare(kit: dict, kinfo: dict, off: dict, oinfo: dict) -> list[tuple]:
    "Rows (what, kit, official, verdict)."
    from alta_nb.learner import lr_factor
    cfg, rows = kinfo['cfg'], []
    def row(what, k, o, ok, gap=None):
        rows.append((what, k, o, 'match' if ok else f'DIFFERS{"" if gap is None else f" (gap {gap:.3g})"}'))
    row('parameters', f"{kinfo['n_params']:,}", f"{oinfo['n_params']:,}", kinfo['n_params'] == oinfo['n_params'])
    row('trainable parameters', f"{kinfo['n_trainable']:,}", f"{oinfo['n_trainable']:,}", kinfo['n_trainable'] == oinfo['n_trainable'])
    kt, ot = set(kinfo['trainable']), set(oinfo['trainable'])
    row('trainable tensors (same names)', f"{len(kt)} ({len(kt - ot)} not official)", f"{len(ot)} ({len(ot - kt)} not kit)", kt == ot)
    row('weights kit → official', 'saved', f"{len(oinfo['missing'])} missing / {len(oinfo['unexpected'])} unexpected",
        not oinfo['missing'] and not oinfo['unexpected'])
    kd, od = set(kinfo['decay']), set(oinfo['decay'])
    row('D2 weight-decay group', f"{len(kd)} tensors", f"{len(od)} tensors (timm param_groups_weight_decay)", kd == od)
    for k in ('pos_embed', 'decoder_pos_embed'):
        d = maxdiff(kinfo['pos'][f'init.{k}'], off[f'init.{k}'])
        row(f'D4 sin-cos {k}', 'pos_embed_rule=official', 'util/pos_embed.py', d <= TOL_FWD, d)
    spe, w, tot = 10, cfg.warmup_epochs, cfg.schedule_epochs or cfg.epochs
    ours = [lr_factor(round(e * spe), w * spe, tot * spe, from_zero=cfg.schedule_rule == 'official') for e in (0.0, 0.5, 5.0, 10.0, 55.0)]
    theirs = [x for x in oinfo['lr_curve']]   # adjust_learning_rate with warmup 10, epochs 100, lr 1
    d = max(abs(a - b) for a, b in zip(ours, theirs))
    row('D5 lr schedule (epochs 0, .5, 5, 10, 55)', ' '.join(f'{x:.3f}' for x in ours), ' '.join(f'{x:.3f}' for x in theirs), d < 1e-9, d)
    for i, (c, d, mx) in enumerate(kinfo['frontal']):
        row(f"frontal 448 → 224: {'frontal_small' if i == 0 else 'StudyDataset, paper profile'} (clip={c})", 'PIL bicubic, then normalise',
            'Resize(bicubic, antialias) in forward', d <= TOL_FWD * max(1.0, mx), d)
    row('D3 mixed precision', f"amp_dtype={cfg.amp_dtype!r} + GradScaler", 'fp16 autocast + NativeScaler', cfg.amp_dtype == 'fp16')
    B = 2
    for b in (0, 1):
        tag = 'all views' if b == 0 else 'absent laterals/priors'
        pairs = [('per-view CLS', 'cls', None), ('patch tokens', 'patches', None), ('image embedding', 'img_proj', None),
                 ('text embedding', 'txt_proj', None), ('MLM logits', 'logits', slice(B, None)), ('MAE predictions', 'pred', None)]
        for what, k, sl in pairs:
            o = off[f'b{b}.{k}'] if sl is None else off[f'b{b}.{k}'][-B:]   # the masked half (official keeps only it)
            d, mx = maxdiff(kit[f'b{b}.{k}'], o), o.abs().max().item()
            row(f'batch {b} ({tag}): {what}', f'{tuple(kit[f"b{b}.{k}"].shape)}', f'max |Δ| {d:.2g} (max |x| {mx:.2g})',
                d <= TOL_FWD * max(1.0, mx), d)
        for k in ('global_loss', 'local_loss', 'mae_loss', 'mlm_loss'):
            a, o = kit[f'b{b}.{k}'].item(), off[f'b{b}.{k}'].item()
            row(f'batch {b}: {k}', f'{a:.6f}', f'{o:.6f}', abs(a - o) <= TOL_FWD * max(1.0, abs(o)), abs(a - o))
    same = [bool(torch.equal(kit[f'mlm.{k}'][i], off[f'mlm.{k}'][i].to(kit[f'mlm.{k}'].dtype))) for k in ('masked', 'labels')
            for i in range(len(kit['mlm.masked']))]
    n_rep = len(kit['mlm.masked'])
    row(f'MLM masking rule ({n_rep:,} reports, same draws)', f"mlm_prob={cfg.mlm_prob}", 'pretrain_datasets._random_mask',
        all(same), sum(not x for x in same))
    gk = sorted(k for k in off if k.startswith('grad.'))
    rel = max(maxdiff(kit[k], off[k]) / max(off[k].abs().max().item(), 1e-30) for k in gk) if set(gk) == {k for k in kit if k.startswith('grad.')} else float('inf')
    row('gradients, every trainable tensor (max |Δ| / max |g|)', f'{len(gk)} tensors', f'{rel:.2g}', rel <= 1e-4, rel)
    steps = [k for k in off if k.startswith('step.')]
    d = max(maxdiff(kit[k], off[k]) for k in steps) if steps and set(steps) == {k for k in kit if k.startswith('step.')} else float('inf')
    dk = max(maxdiff(kit[k], off['step_kitgrad.' + k[5:]]) for k in steps) if d < float('inf') else float('inf')
    row('D1+D2 one AdamW step from the same gradients + clamp', f'{len(steps)} tensors', f'max |Δ| {dk:.2g}', dk <= TOL_STEP, dk)
    # Adam's first step is lr·g/(|g|+eps): where fp32 rounding makes the two gradients differ by Δg, the steps may differ
    # by up to lr·min(2, 2|Δg|/(|g|+eps)) (a sign flip when g is noise). Every element must be within that bound + 1e-7.
    n_over = n_noise = 0
    for k in (steps if d < float('inf') else []):
        dg = (kit['grad.' + k[5:]] - off['grad.' + k[5:]]).abs() if 'grad.' + k[5:] in off else torch.zeros_like(off[k])
        bound = cfg.lr * torch.clamp(2 * dg / (off.get('grad.' + k[5:], dg).abs() + 1e-8), max=2.0) + TOL_STEP
        diff = (kit[k] - off[k]).abs()
        n_over += int((diff > bound).sum()); n_noise += int(((diff > TOL_STEP) & (diff <= bound)).sum())
    row("one AdamW step from each side's own gradients", f'{len(steps)} tensors',
        f'max |Δ| {d:.2g}; {n_noise} elem > 1e-7, all from Δg' if n_over == 0 else f'max |Δ| {d:.2g}; {n_over} elem beyond Δg',
        d < float('inf') and n_over == 0, d)
    return rows

def print_table(rows, times):
    w = max(len(r[0]) for r in rows)
    print(f"{'':{w}}  {'kit':32}  {'official':44}  verdict")
    for r in rows: print(f"{r[0]:{w}}  {r[1]:32}  {r[2]:44}  {r[3]}")
    print(f"\nCPU step time (forward + backward + AdamW + clamp, batch 0, second step): kit {times[0]:.2f} s, "
          f"official {times[1]:.2f} s, ratio {times[0] / times[1]:.2f}")
    print(f"CPU forward time (batch 1, first call): kit {times[2]:.2f} s, official {times[3]:.2f} s, ratio {times[2] / times[3]:.2f}")

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cpu', choices=['cpu'], help='the comparison runs on the CPU (fp32 on both sides)')
    ap.add_argument('--small', action='store_true', help='narrow, shallow towers (same code paths): seconds instead of minutes')
    ap.add_argument('--repo', default=os.environ.get('ALTA_OFFICIAL_REPO', ''), help='the official ALTA checkout (default $ALTA_OFFICIAL_REPO)')
    ap.add_argument('--official-python', default=os.environ.get('ALTA_OFFICIAL_PYTHON', str(HERE.parents[1] / '.venv_official/bin/python')))
    ap.add_argument('--side', default='kit', choices=['kit', 'official'], help=argparse.SUPPRESS)
    ap.add_argument('--work', default='', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.side == 'official': return official_side(Path(a.work), Path(a.repo), a.small)
    repo = Path(a.repo)
    if not a.repo or not (repo / 'model.py').is_file():
        sys.exit(f"ALTA_OFFICIAL_REPO={a.repo!r}: not an ALTA checkout (no model.py); clone github.com/DopamineLcy/ALTA yourself and point the variable at it")
    if not Path(a.official_python).is_file():
        sys.exit(f"{a.official_python}: no official venv; run `make vs-official` (it builds .venv_official with timm 0.6.13, transformers 4.33.3)")
    with tempfile.TemporaryDirectory(prefix='alta_vs_official_') as tmp:
        work = Path(tmp)
        kit, kinfo = kit_side(work, a.small)
        env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONPATH='')
        r = subprocess.run([a.official_python, str(HERE), '--side', 'official', '--work', str(work), '--repo', str(repo.resolve())]
                           + (['--small'] if a.small else []), env=env, capture_output=True, text=True)
        if r.returncode: sys.exit(f"official side failed (rc {r.returncode}):\n{r.stderr[-3000:]}")
        off, oinfo = load_file(str(work / 'official_out.safetensors')), json.loads((work / 'official_info.json').read_text())
    rows = compare(kit, kinfo, off, oinfo)
    print(f"ALTA kit vs official ({'small' if a.small else 'paper'} size, CPU fp32, batch 2, dropout off; "
          f"tensors and losses within {TOL_FWD:g}·max(1, max |x|), step within {TOL_STEP:g})\n")
    print_table(rows, (kinfo['time2'], oinfo['time2'], kinfo['time1'], oinfo['time1']))
    return 0 if all(r[3] == 'match' for r in rows) else 1

if __name__ == '__main__': sys.exit(main())
