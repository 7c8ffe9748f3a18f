"""Levers of issue #31 on the SynthCXR *validation* split: why ALTA does not learn at teach, one setting at a time.

Everything here is chosen on validation only (the 18_ablations protocol: seed CHOICE_SEED = 100, never reported);
no evaluation set is read. Two parts:

  probe      linear probes (logistic regression, scikit-learn) of the frozen towers ALTA starts from, trained on
             the training studies and scored on validation (AUROC per finding, SynthCXR's label table):
             the MRM's frontal CLS, its patch-token mean, and the stand-in text tower's [CLS]; the frontal's
             16-px pixels are the control (what a linear model sees without any tower)
  masked     the same probe of the frozen MRM's frontal [CLS] when only a random 50 % or 25 % of its patches are
             seen (alignment's view at mask_ratio 0.75): what the global InfoNCE can read from the frozen tower
  variants   ALTA trained by the kit's own path (`stages.pretrained`, cached like any stage) with one or more config
             overrides; validation image->report MRR with four slots and with the frontal alone, and the mean
             pairwise cosine of the validation image and report embeddings (1 = collapsed); and the same MRR on as
             many *training* studies (all slots, unmasked): whether alignment fitted its own pairs at all; and
             20_beyond's change task on the validation splits of the aligned draw and of the pretraining draw
             (`pre_*`, 489 items at teach): zero-shot with and without the prior, the text side, and (pretraining
             draw) linear probes of the [CLS] slots and of the fused study feature

    python bench/teach_levers.py probe masked linear
    python bench/teach_levers.py official "masked:multiview=masked" "bn:head_init=batchnorm" "long:epochs=30"
    python bench/teach_levers.py --set mrm_epochs=150 probe      # --set FIELD=VALUE changes the base config

  linear     a linear CLIP on frozen features: two linear heads (image feature -> 64, report feature -> 64) and a
             learned temperature trained with the kit's global InfoNCE (600 steps of 16 training pairs, AdamW 1e-3),
             each image feature (MRM [CLS], patch mean, 16-px pixels) against each report feature (the stand-in's
             [CLS] or token mean, a word 1-2-gram TF-IDF fitted on the training reports); training and
             validation MRR (frontal): which side's frozen features limit retrieval
  overfit    Karpathy's "overfit one batch" from the stages ALTA starts from (teach MRM + text stand-in): one fixed
             training batch, AdamW at lr 1e-3, no clipping, 100 steps; the global InfoNCE every 10 steps, with the
             summed losses or the global InfoNCE alone as the objective (ln 16 = 2.77 is chance)

    python bench/teach_levers.py "overfit:all" "overfit:global" "overfit:global:head_init=batchnorm:align_mask_ratio=0.0"

The #31 settings the teach profile now has, one reverted at a time (README, *What lifted it off chance*):

    python bench/teach_levers.py official "aug:augment=true" "mv:multiview=official" "no_vd:view_dropout=0" baseline
    python bench/teach_levers.py --set norm_pix_loss=true --set pretrain_subjects=0 --set mrm_epochs=60 probe linear

A variant is `name` or `name:field=value:field=value`; `baseline` scores the 04b baseline instead. Prints one line per variant and a table at the end.
"""
import sys, time
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from alta_nb.retrieval import mean_pairwise_cos as mean_cos   # 1 = every row one direction (collapse)

FINDINGS = ('Cardiomegaly', 'Pleural Effusion', 'Consolidation', 'Pneumothorax', 'Edema', 'Atelectasis')


def _labels(cfg, split: str) -> np.ndarray:
    "(studies, findings) 0/1 matrix of `split` from SynthCXR's CheXpert-style table (blank and -1 count as 0)."
    from alta_nb.data import alta_table, study_root
    root, _ = study_root(cfg)
    lab = pd.read_csv(root/'mimic-cxr-2.0.0-chexpert.csv').set_index('study_id')
    ids = alta_table(cfg, split).study_id.values
    return np.stack([(lab.loc[ids, f].fillna(0).values == 1).astype(int) for f in FINDINGS], 1)


def probe_auroc(x_tr, y_tr, x_va, y_va) -> dict:
    "Per finding: validation AUROC of a logistic regression on standardised features (findings seen in both splits)."
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    out = {}
    for j, f in enumerate(FINDINGS):
        if len(set(y_tr[:, j])) < 2 or len(set(y_va[:, j])) < 2: continue
        clf = LogisticRegression(max_iter=2000).fit((x_tr - mu) / sd, y_tr[:, j])
        out[f] = roc_auc_score(y_va[:, j], clf.decision_function((x_va - mu) / sd))
    return out


def tower_features(cfg, split: str) -> dict:
    "Features of `split`: the frontal's 16-px pixels (a control), MRM frontal CLS and patch mean, stand-in [CLS] and token mean."
    from alta_nb.stages import pretrained, text_stand_in
    from alta_nb.data import get_tokenizer
    from alta_nb.text import build_text_tower
    mrm = pretrained(cfg, 'mrm')                          # trained here unless the stage cache has it
    tower = build_text_tower(cfg.pretraining(), get_tokenizer(cfg.pretraining()), adapters=False)
    tower.load_state_dict(text_stand_in(cfg, mrm.state_dict()), strict=False); tower.eval()
    with torch.no_grad(): return _features(cfg, split, mrm, tower)


def _features(cfg, split, mrm, tower) -> dict:
    from alta_nb.data import study_dataloader
    from alta_nb.mrm import run_blocks, prepend_cls, embed_patches
    out = dict(pixels_16px=[], mrm_cls=[], mrm_patch_mean=[], text_cls=[], text_mean=[])
    for b in study_dataloader(cfg, split=split, shuffle=False, train=False, drop_last=False):
        out['pixels_16px'].append(F.interpolate(b['images'][:, 0], size=16, mode='area').flatten(1))
        h = run_blocks(mrm.vit, prepend_cls(mrm.vit, embed_patches(mrm.vit, b['images'][:, 0])))
        out['mrm_cls'].append(h[:, 0]); out['mrm_patch_mean'].append(h[:, 1:].mean(1))
        h, am = tower.hidden(b['input_ids'], b['attention_mask']), b['attention_mask'][..., None].float()
        out['text_cls'].append(h[:, 0]); out['text_mean'].append((h * am).sum(1) / am.sum(1))
    return {k: torch.cat(v) for k, v in out.items()}


def masked_cls(cfg, split: str, keep: float, seed: int = 0) -> np.ndarray:
    "The frozen MRM's frontal [CLS] when a random `keep` fraction of its patches is seen (MAE's random masking)."
    from alta_nb.stages import pretrained
    from alta_nb.data import study_dataloader
    from alta_nb.mrm import run_blocks, prepend_cls, embed_patches, random_masking
    vit, g, out = pretrained(cfg, 'mrm').vit, torch.Generator().manual_seed(seed), []
    with torch.no_grad():
        for b in study_dataloader(cfg, split=split, shuffle=False, train=False, drop_last=False):
            kept = random_masking(embed_patches(vit, b['images'][:, 0]), 1 - keep, g)[0]
            out.append(run_blocks(vit, prepend_cls(vit, kept))[:, 0])
    return torch.cat(out).numpy()


def masked_probe(cfg) -> pd.DataFrame:
    y_tr, y_va = _labels(cfg, 'train'), _labels(cfg, 'validate')
    rows = []
    for keep in (1.0, 0.5, 0.25):
        auc = probe_auroc(masked_cls(cfg, 'train', keep), y_tr, masked_cls(cfg, 'validate', keep), y_va)
        rows.append(dict(patches_seen=keep, mean_auroc=np.mean(list(auc.values())), **{f: round(v, 3) for f, v in auc.items()}))
        print('masked', rows[-1], flush=True)
    return pd.DataFrame(rows)


def probe(cfg) -> pd.DataFrame:
    tr, va = tower_features(cfg, 'train'), tower_features(cfg, 'validate')
    y_tr, y_va = _labels(cfg, 'train'), _labels(cfg, 'validate')
    rows = []
    for k in tr:
        auc = probe_auroc(tr[k].numpy(), y_tr, va[k].numpy(), y_va)
        rows.append(dict(feature=k, mean_auroc=np.mean(list(auc.values())), val_mean_cos=mean_cos(va[k]),
                         **{f: round(v, 3) for f, v in auc.items()}))
        print('probe', rows[-1], flush=True)
    return pd.DataFrame(rows)


def baseline_row(cfg) -> dict:
    "The 04b baseline (its own cache) on the same validation studies: the bar (frontal only, TF-IDF reports)."
    from alta_nb.baseline import pretrained_baseline, baseline_data
    from alta_nb.ablations import validation_mrr
    t0 = time.perf_counter()
    m = pretrained_baseline(cfg)
    x, t, _ = baseline_data(cfg, 'validate', bow=m.tokenizer)
    with torch.no_grad(): img, txt = m.encode_image(x), m.encode_text(t)
    row = dict(variant='baseline', overrides='(04b)', seconds=round(time.perf_counter() - t0),
               val_mrr_frontal=validation_mrr(m, cfg, (img, txt)), img_cos_frontal=mean_cos(img),
               txt_cos=mean_cos(txt))
    print('variant', row, flush=True)
    return row


def zs5(m, c) -> dict:
    "Five-class zero-shot of `c`'s validation frontals positive for exactly one class (kit prompts)."
    from alta_nb.zeroshot import ensemble_class_embeddings, class_prompts, multiclass_zeroshot
    from alta_nb.eval_sets import CHEXPERT_5 as CLS5
    from alta_nb.data import alta_table, study_root
    from alta_nb.ablations import validation_embeddings
    root = study_root(c)[0]; lab = pd.read_csv(root/'mimic-cxr-2.0.0-chexpert.csv').set_index('study_id')
    ids = alta_table(c, 'validate').study_id.values
    L = (lab.loc[ids, CLS5].fillna(0).values == 1); one = L.sum(1) == 1
    img = F.normalize(validation_embeddings(m, c, views=1)[0].float(), dim=-1)
    cls = ensemble_class_embeddings(m, m.tokenizer, class_prompts(), CLS5, c)
    r = multiclass_zeroshot((img @ cls.T).numpy()[one], L[one].argmax(1))
    return dict(n=int(one.sum()), acc=round(r['acc'], 3), auroc=round(r['auroc'], 3))

def pneu(m, c) -> float:
    "Pneumonia AUROC of `c`'s validation frontals scored with the kit's RSNA prompts."
    from alta_nb.zeroshot import ensemble_class_embeddings, auroc, RSNA_PROMPTS
    from alta_nb.ablations import validation_embeddings, validation_pneumonia
    y = validation_pneumonia(c); img = F.normalize(validation_embeddings(m, c, views=1)[0].float(), dim=-1)
    cls = ensemble_class_embeddings(m, m.tokenizer, RSNA_PROMPTS, ['Normal', 'Pneumonia'], c)
    s = torch.softmax(img @ cls.T, -1)[:, 1].numpy()
    return round(auroc(y[y >= 0] == 1, s[y >= 0]), 3)


def retrieval_row(m, c) -> dict:
    "Validation MRR (four slots, frontal), embedding cosines, and the MRR on as many training pairs."
    from alta_nb.ablations import validation_embeddings, validation_mrr
    row = {}
    for views, tag in ((None, 'all_slots'), (1, 'frontal')):
        img, txt = validation_embeddings(m, c, views)
        row[f'val_mrr_{tag}'] = validation_mrr(m, c, (img, txt))
        row[f'img_cos_{tag}'] = mean_cos(img)
    row['txt_cos'] = mean_cos(txt)
    img, txt = (e[:len(txt)] for e in validation_embeddings(m, c, split='train'))   # as many training pairs
    row['train_mrr_all_slots'] = validation_mrr(m, c, (img, txt))     # did alignment fit its own pairs?
    return row


def variant(cfg, spec: str) -> dict:
    "Train (or load from the stage cache) the ALTA of `spec` and score it on validation."
    if spec == 'baseline': return baseline_row(cfg)
    from alta_nb.core import parse_overrides
    from alta_nb.stages import pretrained
    name, *kv = spec.split(':')
    c = cfg.replace(**parse_overrides(kv)) if kv else cfg
    t0 = time.perf_counter()
    m = pretrained(c, 'alta')
    row = dict(variant=name, overrides=':'.join(kv) or '(teach)', seconds=round(time.perf_counter() - t0))
    row |= retrieval_row(m, c)
    row |= temporal_check(m, c, probes=False) | {f'pre_{k}': v for k, v in temporal_check(m, c.pretraining()).items()}
    print('variant', row, flush=True)
    return row


def temporal_check(model, cfg, split: str = 'validate', probes: bool = True) -> dict:
    """The 20_beyond change task on a SynthCXR split of `cfg`'s tree (never an evaluation set): zero-shot balanced
    accuracy with all four slots and with the prior slots masked, the text side (the split's reports, which state
    the change, against the same prompts), and out-of-fold linear probes of the [CLS] slots side by side and of the
    fused study feature; chance 1/3."""
    from alta_nb.data import alta_table, study_root, study_dataloader
    from alta_nb.beyond import temporal_labels, change_prompts, balanced_accuracy, _scores, _items
    root, _ = study_root(cfg)
    truth = pd.read_csv(root/'synthcxr_truth.csv', keep_default_na=False)
    items = _items(temporal_labels(truth), {str(s): i for i, s in enumerate(alta_table(cfg, split).study_id)})
    model.eval(); emb = {'all': [], 'prior_masked': []}; txt = []; feats = {'slots': [], 'pooled': []}
    with torch.no_grad():
        for b in study_dataloader(cfg, split=split, shuffle=False, train=False, drop_last=False):
            if probes:                                 # before the head: the slots and the fusion
                enc = model.image(*model.select_views(b['images'], b['view_mask']))
                feats['slots'].append(enc['cls'].flatten(1)); feats['pooled'].append(enc['pooled'])
            vm = b['view_mask'].clone(); emb['all'].append(model.encode_image(b['images'], vm))
            vm[:, 2:] = False; emb['prior_masked'].append(model.encode_image(b['images'], vm))
            txt.append(model.encode_text(b['input_ids'], b['attention_mask']))
    y, out = items.label.to_numpy(), dict(items=len(items))
    for k, e in [*emb.items(), ('text_side', txt)]:
        s = _scores(model, cfg, torch.cat(e), items, change_prompts())
        out[f'change_acc_{k}'] = round(balanced_accuracy(y, s.argmax(1)), 3)
    from alta_nb.beyond import linear_probe_acc       # out of fold, folds grouped by subject (20_beyond)
    groups = alta_table(cfg, split).subject_id.astype(str).to_numpy()
    for k, v in feats.items() if probes else ():
        out[f'change_probe_{k}'] = round(linear_probe_acc(torch.cat(v).numpy(), items, groups), 3)
    return out


def linear_clip(cfg, steps: int = 600, batch: int = 16, seed: int = 0) -> pd.DataFrame:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from alta_nb.data import alta_table
    from alta_nb.losses import global_contrastive_loss
    from alta_nb.retrieval import reciprocal_ranks
    feats = {sp: tower_features(cfg, sp) for sp in ('train', 'validate')}
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2).fit(alta_table(cfg, 'train').report)
    for sp, f in feats.items():
        f['tfidf'] = torch.tensor(tfidf.transform(alta_table(cfg, sp).report).toarray(), dtype=torch.float32)
    tr, va, n, rows = feats['train'], feats['validate'], len(feats['validate']['tfidf']), []
    for ik in ('mrm_cls', 'mrm_patch_mean', 'pixels_16px'):
        for tk in ('text_cls', 'text_mean', 'tfidf'):
            torch.manual_seed(seed)
            mu = {k: (tr[k].mean(0), tr[k].std(0) + 1e-6) for k in (ik, tk)}
            heads = {k: torch.nn.Linear(tr[k].shape[1], 64) for k in (ik, tk)}
            scale = torch.nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))
            emb = lambda k, x: F.normalize(heads[k]((x - mu[k][0]) / mu[k][1]), dim=-1)
            opt = torch.optim.AdamW([*heads[ik].parameters(), *heads[tk].parameters(), scale], lr=1e-3)
            for _ in range(steps):
                i = torch.randint(0, len(tr[ik]), (batch,))
                loss = global_contrastive_loss(emb(ik, tr[ik][i]), emb(tk, tr[tk][i]), scale.exp())
                opt.zero_grad(); loss.backward(); opt.step()
            with torch.no_grad():
                mrr = {sp: float(reciprocal_ranks(emb(ik, d[ik][:n]) @ emb(tk, d[tk][:n]).T).mean())
                       for sp, d in (('train', tr), ('validate', va))}
            rows.append(dict(image=ik, report=tk, last_loss=loss.item(), train_mrr=mrr['train'], val_mrr=mrr['validate']))
            print('linear', rows[-1], flush=True)
    return pd.DataFrame(rows)


def overfit(cfg, spec: str, steps: int = 100, lr: float = 1e-3) -> dict:
    "`overfit:<all|global>[:field=value...]`: can ALTA, from its pretrained stages, learn one batch by heart?"
    from alta_nb.core import parse_overrides, seed_everything
    from alta_nb.stages import pretrained, text_stand_in
    from alta_nb.alta import build_model
    from alta_nb.data import study_dataloader, get_tokenizer
    _, objective, *kv = spec.split(':')
    c = cfg.replace(**parse_overrides(kv)) if kv else cfg
    sd = pretrained(cfg, 'mrm').state_dict()     # the base config's stages: the overrides act on alignment only
    seed_everything(0)
    m = build_model(c, 'alta', get_tokenizer(cfg.pretraining()), device='cpu')
    m.load_mrm_state(sd); m.load_text_state(text_stand_in(cfg, sd))
    batch = next(iter(study_dataloader(c, split='train', shuffle=False, train=False)))
    opt, losses, norms = torch.optim.AdamW(m.trainable_parameters(), lr=lr), [], []
    for _ in range(steps):
        out = m.train()(batch)
        losses.append(out['global_loss'].item())
        opt.zero_grad(); out['loss' if objective == 'all' else 'global_loss'].backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(m.trainable_parameters(), float('inf'))))
        opt.step()
    row = dict(variant=spec, global_infonce_every_10=[round(x, 2) for x in losses[::10]], last=round(losses[-1], 3),
               min=round(min(losses), 3), grad_norm=f'{min(norms):.1f}-{max(norms):.1f}')
    print('overfit', row, flush=True)
    return row


def main(argv=None):
    from alta_nb.core import get_config
    from alta_nb.ablations import CHOICE_SEED
    from alta_nb.core import parse_overrides
    args = list(sys.argv[1:] if argv is None else argv)
    sets = [args.pop(i + 1) for i in reversed(range(len(args) - 1)) if args[i] == '--set']
    args = [a for a in args if a != '--set']
    if not args: sys.exit(__doc__)
    cfg = get_config('teach', seed=CHOICE_SEED, **parse_overrides(sets))
    if sets: print('base config: teach with', ', '.join(sets))
    from alta_nb.data import alta_table
    n_val = len(alta_table(cfg, 'validate'))
    print(f'teach, validation split ({n_val} studies; chance MRR {sum(1 / r for r in range(1, n_val + 1)) / n_val:.3f}), '
          f'seed {CHOICE_SEED}', flush=True)
    rows = []
    for a in args:
        if a == 'probe': print(probe(cfg).round(3).to_string(index=False))
        elif a == 'masked': print(masked_probe(cfg).round(3).to_string(index=False))
        elif a.startswith('overfit:'): overfit(cfg, a)
        elif a == 'linear': print(linear_clip(cfg).round(3).to_string(index=False))
        else: rows.append(variant(cfg, a))
    if rows: print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == '__main__': main()
