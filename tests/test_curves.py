"Compute curves (issue #16): the weights kept after each epoch, and the FLOPs-to-match reading of the curves."
import math
import numpy as np, pandas as pd
import pytest, torch
from torch.utils.data import DataLoader, default_collate
from alta_nb.core import get_config, seed_everything
from alta_nb.learner import ToyStudies, ToyStudyModel
from alta_nb.train import fit; from alta_nb.stability import list_epoch_weights, load_epoch_weights
from alta_nb.curves import flops_to_match, compute_curve

def toy_fit(run_dir, epochs, **kw):
    "The toy model (patch embedding frozen) trained by the kit's `fit` for `epochs`; one cosine of 3 epochs whatever `epochs`."
    cfg = get_config('smoke', batch_size=8, epochs=epochs, schedule_epochs=3, lr=3e-3, warmup_epochs=0.5, device='cpu').replace(**kw)
    dl = DataLoader(ToyStudies(64, seed=0), batch_size=8, collate_fn=default_collate)
    seed_everything(0); m = ToyStudyModel(); m.patch_embed.requires_grad_(False)
    fit(m, dl, cfg, run_dir, progress=False)
    return m

@pytest.mark.parametrize('k', [1, 2])
def test_epoch_k_weights_are_the_model_after_k_epochs(tmp_path, k):
    toy_fit(tmp_path/'long', 3, epoch_weights=True)
    files = list_epoch_weights(tmp_path/'long')
    assert [f.name for f in files] == [f'epoch_{e:03d}.safetensors' for e in (1, 2, 3)]
    sd, meta = load_epoch_weights(files[k - 1])
    short = toy_fit(tmp_path/'short', k, epoch_weights=False)                    # an independent run of k epochs, same seed
    assert meta == dict(step=8 * k, epoch=k)                  # 64 studies / 8 per step
    trainable = {n: p.detach() for n, p in short.named_parameters() if p.requires_grad}
    assert sorted(sd) == sorted(trainable) and 'patch_embed.weight' not in sd
    assert all(torch.equal(sd[n], trainable[n]) for n in sd)
    if k == 1:                                                # and epoch 1 differs from epoch 2: the files are not all one
        sd2, _ = load_epoch_weights(files[1])
        assert not torch.equal(sd['img_proj.weight'], sd2['img_proj.weight'])

def test_no_epoch_weights_unless_asked(tmp_path):
    toy_fit(tmp_path, 1, epoch_weights=False)                  # (a profile may switch them on)
    assert list_epoch_weights(tmp_path) == [] and not (tmp_path/'epochs').exists()

def test_truncated_epoch_weights_one_line_error(tmp_path):
    toy_fit(tmp_path, 1, epoch_weights=True)
    f = list_epoch_weights(tmp_path)[0]
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(ValueError, match='unreadable'): load_epoch_weights(f)
    with pytest.raises(FileNotFoundError, match='epoch weights not found'): load_epoch_weights(tmp_path/'nope.safetensors')

def test_compute_curve_needs_a_trained_variant():
    with pytest.raises(ValueError, match="'random_init' is never trained"): compute_curve(get_config('smoke'), 'random_init', suite=None)

def _curves(rows):
    return pd.DataFrame([dict(variant=v, seed=s, epoch=e, step=e, train_flops=f, metric='m', value=x) for v, s, e, f, x in rows])

def test_flops_to_match_hand_made():
    # CLIP final: seed 0 at 0.4, seed 1 at 0.6 (mean 0.5) after 100 FLOPs. ALTA mean: 0.3, 0.45, 0.5, 0.7 at 5, 10, 15, 20 FLOPs.
    c = _curves([('clip_scratch', 0, 5, 50, 0.1), ('clip_scratch', 0, 10, 100, 0.4), ('clip_scratch', 1, 10, 100, 0.6),
                 ('alta_multiview', 0, 1, 5, 0.2), ('alta_multiview', 0, 2, 10, 0.4), ('alta_multiview', 0, 3, 15, 0.45),
                 ('alta_multiview', 0, 4, 20, 0.8), ('alta_multiview', 1, 1, 5, 0.4), ('alta_multiview', 1, 2, 10, 0.5),
                 ('alta_multiview', 1, 3, 15, 0.55), ('alta_multiview', 1, 4, 20, 0.6)])
    r = flops_to_match(c, 'm')
    assert r['ratio'] == pytest.approx(15 / 100) and r['clip_final'] == pytest.approx(0.5) and r['clip_total_flops'] == 100
    assert r['per_seed'] == {0: pytest.approx(10 / 100), 1: pytest.approx(20 / 100)} and r['reason'] == ''
    low = c.assign(value=np.where(c.variant == 'alta_multiview', c.value / 10, c.value))
    r = flops_to_match(low, 'm')
    assert math.isnan(r['ratio']) and all(math.isnan(v) for v in r['per_seed'].values())
    assert r['reason'].startswith("ALTA's mean m peaks at 0.070 (epoch 4 of 4), below CLIP's final 0.500")
    with pytest.raises(ValueError, match="lack 'alta_multiview'"): flops_to_match(c[c.variant == 'clip_scratch'], 'm')

def test_flops_to_match_float_noise_counts_as_reached():
    c = _curves([('clip_scratch', 0, 2, 100, 0.125), ('alta_multiview', 0, 1, 10, 0.125 - 1e-12), ('alta_multiview', 0, 2, 20, 0.125)])
    assert flops_to_match(c, 'm')['ratio'] == pytest.approx(10 / 100)
    assert math.isnan(flops_to_match(c.assign(value=c.value - np.where(c.variant == 'alta_multiview', 1e-3, 0)), 'm')['ratio'])

def test_auroc_placements_and_delong_gain_vs_sklearn():
    "DeLong placements average to scikit-learn's AUROC; the paired gain of two scorings is the difference of their AUROCs; a reference never loses to itself."
    from sklearn.metrics import roc_auc_score
    from alta_nb.ablations import auroc_placements, pick_auroc_option
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40); a = rng.normal(size=40) + y; b = rng.normal(size=40) + 2 * y
    for s in (a, b, np.round(a)):                                      # rounded: ties count a half, as sklearn counts them
        pos, neg = auroc_placements(s, y)
        assert math.isclose(pos.mean(), roc_auc_score(y, s)) and math.isclose(neg.mean(), roc_auc_score(y, s))
    pick, t = pick_auroc_option({'ref': a, 'same': a.copy(), 'better': b}, y)
    assert math.isclose(t.gain[2], roc_auc_score(y, b) - roc_auc_score(y, a))
    assert t.gain_se[1] == 0 and not t.clear[1]
    assert pick == ('better' if t.gain[2] > 2 * t.gain_se[2] else 'ref')
