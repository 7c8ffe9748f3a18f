"""Mutations of the kit for `bench/vs_official.py --mutate NAME|all`: each changes the kit, in the kit's process only,
in one way a group of rows guards against; that group must turn to DIFFERS (and the script exit non-zero). A row that
no mutation turns would be a row that cannot fail, so `--mutate all` also checks that every row is some mutation's.
"""
from __future__ import annotations
import json, subprocess, sys, tempfile, time
from pathlib import Path

STEPS = ('D1+D2 step 1', 'D1+D2 two steps')
BATCHES = ((0, 'all views'), (1, 'absent laterals/priors'))
FORWARD = tuple(f'batch {b} ({t}): {w}' for b, t in BATCHES
                for w in ('per-view CLS', 'patch tokens', 'image embedding', 'MLM logits', 'MAE predictions'))
TEXT = tuple(f'batch {b} ({t}): text embedding' for b, t in BATCHES)
LOSSES = tuple(f'batch {b}: {k}' for b in (0, 1) for k in ('global_loss', 'local_loss', 'mae_loss', 'mlm_loss'))

def _profile(**kv):
    "The kit's paper profile with `kv` changed (a callable value maps the old one)."
    from alta_nb.core import PROFILES
    p = PROFILES['paper']
    for k, v in kv.items(): p[k] = v(p[k]) if callable(v) else v

def _betas():
    "The kit's AdamW builder (the Learner's default `opt_func`) with Adam's default betas, not (0.9, 0.95)."
    import torch
    from alta_nb.learner import Learner, param_groups
    def adamw(model, cfg, device):
        return torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.decay_rule), lr=cfg.lr, betas=(0.9, 0.999))
    d = list(Learner.__init__.__defaults__); d[-1] = adamw; Learner.__init__.__defaults__ = tuple(d)

def _no_clamp():
    import alta_nb.train as T
    T.ClampScalesCB.after_update = lambda self, learn: None

def _drop_weight():
    "The kit's model without one trainable tensor (the first ViT block's attention-adapter down-projection bias)."
    import alta_nb.alta as A
    real = A.build_model
    def build(*a, **k):
        m = real(*a, **k); m.image.vit.blocks[0].attn_adapter.down.bias = None; return m
    A.build_model = build

def _tanh_gelu():
    "The kit's text tower with tanh-approximated GELU in its BERT feed-forward layers (its embedding sees no image)."
    import torch.nn as nn, alta_nb.alta as A
    real = A.build_model
    def build(*a, **k):
        m = real(*a, **k)
        for mod in m.text.modules():
            if hasattr(mod, 'intermediate_act_fn'): mod.intermediate_act_fn = nn.GELU(approximate='tanh')
        return m
    A.build_model = build

def _bilinear_frontal():
    "`frontal_small` resizing with bilinear instead of bicubic (in `alta_nb.images` and where `StudyDataset` calls it)."
    import numpy as np
    from PIL import Image
    import alta_nb.images as I, alta_nb.data as D
    def frontal_small(hi, size, clip=True):
        small = np.asarray(Image.fromarray(hi.astype(np.float32) / 255, mode='F').resize((size, size), Image.BILINEAR))
        return I.normalize_np(np.clip(small, 0, 1) if clip else small)
    I.frontal_small = D.frontal_small = frontal_small

def _study_clip():
    "`StudyDataset` that always clips its 224² frontal, whatever the profile says."
    import alta_nb.data as D
    real = D.StudyDataset.__init__
    def init(self, *a, **k): real(self, *a, **k); self.clip_frontal = True
    D.StudyDataset.__init__ = init

# name → (what changes in the kit, how, the rows it must turn to DIFFERS)
MUTATIONS = {
    'lr':        ('paper lr × 1.5', lambda: _profile(lr=lambda x: x * 1.5), ('D5 lr schedule',) + STEPS),
    'schedule':  ("schedule_rule='kit' (warm-up from lr/warmup)", lambda: _profile(schedule_rule='kit'),
                  ('D5 lr schedule',) + STEPS),
    'betas':     ('AdamW betas (0.9, 0.999)', _betas, ('D1+D2 two steps',)),
    'clamp':     ('ClampScalesCB removed', _no_clamp, STEPS),
    'decay':     ("decay_rule='kit' (no decay on embeddings/tokens)", lambda: _profile(decay_rule='kit'),
                  ('D2 weight-decay group',)),
    'amp':       ("amp_dtype='bf16'", lambda: _profile(amp_dtype='bf16'), ('D3 mixed precision',)),
    'pos_embed': ("pos_embed_rule='mae' (the tables are weights: sent across, so only D4 sees it)",
                  lambda: _profile(pos_embed_rule='mae'), ('D4 sin-cos pos_embed', 'D4 sin-cos decoder_pos_embed')),
    'mask_ratio': ('alignment mask ratio 0.75 → 0.7 (more patches kept)', lambda: _profile(align_mask_ratio=0.7),
                   FORWARD + LOSSES + ('gradients',)),
    'gelu':      ('tanh-approximated GELU in the text tower', _tanh_gelu, TEXT),
    'mae_loss':  ('norm_pix_loss=False', lambda: _profile(norm_pix_loss=False),
                  ('batch 0: mae_loss', 'batch 1: mae_loss')),
    'mlm':       ('mlm_prob 0.5 → 0.4', lambda: _profile(mlm_prob=0.4), ('MLM masking rule',)),
    'weights':   ('one adapter bias dropped from the model', _drop_weight,
                  ('parameters', 'trainable parameters', 'trainable tensors', 'weights kit → official')),
    'frontal':   ('frontal_small bilinear', _bilinear_frontal,
                  ('frontal 448 → 224: frontal_small', 'frontal 448 → 224: StudyDataset')),
    'study_clip': ('StudyDataset always clips', _study_clip, ('frontal 448 → 224: StudyDataset',)),
}

def apply(name: str):
    if name not in MUTATIONS: sys.exit(f"--mutate {name!r}: choose one of {', '.join(MUTATIONS)} or all")
    MUTATIONS[name][1]()

def _rows(script: Path, a, name: str) -> tuple[int, list, float]:
    "Run the comparison in a fresh process (mutated by `name`, or not): (exit code, [(row, verdict)], seconds)."
    with tempfile.TemporaryDirectory() as tmp:
        js, t0 = Path(tmp) / 'rows.json', time.perf_counter()
        cmd = [sys.executable, str(script), '--repo', a.repo, '--official-python', a.official_python,
               '--rows-json', str(js)]
        r = subprocess.run(cmd + (['--small'] if a.small else []) + (['--mutate', name] if name else []),
                           capture_output=True, text=True)
        if not js.exists():
            sys.exit(f"--mutate {name or '(none)'}: no table (exit {r.returncode}):\n"
                     f"{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        return r.returncode, json.loads(js.read_text()), time.perf_counter() - t0

def run_all(script: Path, a) -> int:
    "The unmutated comparison, then each mutation: which rows it turned; exit 0 only if every row was caught."
    rc, base, t = _rows(script, a, '')
    print(f"unmutated: exit {rc}, {sum(v == 'match' for _, v in base)}/{len(base)} rows match ({t:.0f} s)")
    if rc or any(v != 'match' for _, v in base):
        print('the unmutated kit must match first:', *[f'  {r}: {v}' for r, v in base if v != 'match'], sep='\n')
        return 1
    names, caught, ok = [r for r, _ in base], {}, True
    print('\nmutation → rows turned to DIFFERS')
    for name, (what, _, guards) in MUTATIONS.items():
        rc, rows, t = _rows(script, a, name)
        turned = [r for r, v in rows if v != 'match']
        missed = [g for g in guards if not any(r.startswith(g) for r in turned)]
        for r in turned: caught.setdefault(r, []).append(name)
        ok &= rc != 0 and not missed
        print(f"{name} ({what}): exit {rc}, {len(turned)} rows DIFFER, "
              + (f"MISSED: {', '.join(missed)}" if missed else 'every guarded row caught') + f"  [{t:.0f} s]")
        for r in turned[:6]: print(f'    {r}')
        if len(turned) > 6: print(f'    … and {len(turned) - 6} more')
    uncaught = [r for r in names if r not in caught]
    unguarded = [r for r in names if not any(r.startswith(g) for _, _, gs in MUTATIONS.values() for g in gs)]
    print(f"\n{len(names) - len(uncaught)}/{len(names)} rows caught by at least one mutation"
          + ''.join(f'\n  NOT CAUGHT: {r}' for r in uncaught)
          + ''.join(f'\n  guarded by no mutation: {r}' for r in unguarded))
    ok &= not uncaught and not unguarded
    print('every row can fail: OK' if ok else 'FAILED: some row was not caught by its mutation')
    return 0 if ok else 1
