"""Karpathy's "overfit one batch" on one fixed teach batch of 16 studies: the 04b baseline, ALTA and CLIP from
scratch, each with AdamW at lr 1e-3 for at most 100 steps, must take the global InfoNCE below 0.1."""
import math, os
import pytest
import torch
from alta_nb.core import get_config, seed_everything

STEPS, LR, TARGET, B = 100, 1e-3, 0.1, 16
# The teach profile's data, image size and tokenizer (a small draw of its world: 8 subjects, the first 16 training
# studies in table order, no augmentation); ALTA and CLIP with smoke-sized towers, because their teach-sized
# 100 steps take 60-150 s on 2 cores (measured numbers below).
SMOKE_TOWERS = dict(patch_size=16, vit_dim=32, vit_depth=2, vit_heads=2, decoder_dim=32, decoder_depth=1,
                    decoder_heads=2, text_dim=32, text_layers=2, text_heads=2, text_intermediate=64, embed_dim=32)

@pytest.fixture(scope='module')
def teach_batch(tmp_path_factory):
    "(cfg, tokenizer, one fixed batch of 16 teach-profile training studies), SynthCXR in a temporary folder."
    from alta_nb.data import study_dataloader, get_tokenizer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # as the smoke profile: no spinning threads on a loaded 2-core machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ALTA_DATA', str(tmp_path_factory.mktemp('data')))
        cfg = get_config('teach', n_subjects=8)
        tok = get_tokenizer(cfg)
        batch = next(iter(study_dataloader(cfg, 'train', tokenizer=tok, shuffle=False, train=False, batch_size=B)))
        from alta_nb.baseline import BagOfWords
        from alta_nb.data import alta_table
        bow = BagOfWords(alta_table(cfg, 'train').report)
    assert batch['images'].shape[0] == B
    yield cfg, tok, batch, bow
    torch.set_num_threads(threads)

def _overfit_kit_model(cfg, tok, batch, kind: str) -> dict:
    "AdamW (lr 1e-3, no clipping) on the kit's training loss of `kind` for one batch; global InfoNCE and grad norms."
    from alta_nb.alta import build_model
    seed_everything(0)
    m = build_model(cfg.replace(**SMOKE_TOWERS), kind=kind, tokenizer=tok, device='cpu').train()
    params = m.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=LR)
    losses, norms = [], []
    for _ in range(STEPS):
        out = m(batch)
        losses.append(out['global_loss'].item())
        if losses[-1] < TARGET: break
        opt.zero_grad(); out['loss'].backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, float('inf'))))
        opt.step()
    return dict(losses=losses, norms=norms)

def test_baseline_overfits_one_teach_batch(teach_batch):
    from alta_nb.baseline import BaselineCLIP, overfit_one_batch
    cfg, _, batch, bow = teach_batch
    seed_everything(0)
    model = BaselineCLIP(bow.n_features, cfg.embed_dim)          # the teach-sized baseline
    losses = overfit_one_batch(model, batch['images'][:, 0], bow(batch['report'])['input_ids'], STEPS, LR, TARGET)
    assert abs(losses[0] - math.log(B)) < 1.0, losses[0]          # it starts near chance ...
    assert losses[-1] < TARGET and len(losses) <= STEPS, losses    # ... and learns 16 pairs by heart

def _probe(teach_batch, kind):
    cfg, tok, batch, _ = teach_batch
    r = _overfit_kit_model(cfg, tok, batch, kind)
    print(kind, [round(x, 3) for x in r['losses'][::10]], 'min', round(min(r['losses']), 3),
          'grad norm', round(min(r['norms']), 3), round(max(r['norms']), 3))
    return r

# Measured on this batch (AdamW lr 1e-3, no clipping, the kit's summed losses; issue #31). Fresh towers start
# collapsed: a fresh BERT gives every report nearly the same [CLS] (mean pairwise cosine 0.89 over the 16 reports),
# and the head's BatchNorm (teach: `head_init='batchnorm'`) standardises what is left -- with BERT's 0.1 dropout
# switched on, that is mostly the dropout's noise, new at every step, so InfoNCE had no fixed pairs to learn:
# ALTA 4.83 -> min 2.48 and CLIP 5.44 -> min 1.64 in 100 steps. The teach profile aligns with
# `align_text_dropout=0`: CLIP reaches 0.1 in 17-23 steps (seeds 0-4). ALTA's alignment masking is augmentation
# and, as in Karpathy's recipe, off here: 37-56 steps (seeds 0-4); with the profile's 0.25, 77-121.
def test_alta_overfits_one_teach_batch(teach_batch):
    cfg, tok, batch, _ = teach_batch
    r = _overfit_kit_model(cfg.replace(align_mask_ratio=0.0), tok, batch, 'alta')
    print('alta', [round(x, 3) for x in r['losses'][::10]], 'steps', len(r['losses']))
    assert min(r['losses']) < TARGET, r['losses'][::10]

def test_clip_scratch_overfits_one_teach_batch(teach_batch):
    r = _probe(teach_batch, 'clip_scratch')
    assert min(r['losses']) < TARGET, r['losses'][::10]

def test_report_dropout_hides_the_pairs(teach_batch):
    "The control: the same ALTA with BERT's 0.1 dropout while aligning does not learn the batch."
    cfg, tok, batch, _ = teach_batch
    r = _overfit_kit_model(cfg.replace(align_text_dropout=0.1, align_mask_ratio=0.0), tok, batch, 'alta')
    assert min(r['losses']) > 1.0, r['losses'][::10]
