"Evaluation: metric functions on hand-made cases, set builders on the real public label tables, bad input, evaluate()."
import io, json, os, subprocess, sys, zipfile
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, BIN, tail

from alta_nb.core import get_config
from alta_nb.eval_sets import (CHEXPERT_5, CHEXPERT_8, CHEXPERT_LABELS, RSNA_CLASSES, EvalSet, SHIPPED, build_public_lists,
                               check_images, chexpert_5x200, chexpert_8x200, exclusive_mask, gloria_5x200_mask,
                               official_lists, convirt_text_queries, read_alta_rsna_list, read_id_list, rsna_gloria_split,
                               rsna_patient_labels, shipped_set, shipped_sums, write_id_list)
from alta_nb.retrieval import (CHEXPERT8_TEXT_QUERIES, NEGATION_FINDINGS, bootstrap_ci, clean_text, img2txt, mean_pairwise_cos,
                               negation_cos, precision_at_k, rank_candidates, similarity)
from alta_nb.evaluate import EvalSuite, evaluate
from alta_nb.zeroshot import (THRESHOLDS, auroc, best_threshold, binary_counts_metrics, class_prompts,
                              cv_threshold_metrics, multiclass_zeroshot, rsna_zeroshot)

# ---------------------------------------------------------------- P@K, hand-made
def test_p_at_k_known_answers():
    sim = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.3, 0.9]])
    assert precision_at_k(sim, [0, 1], [0, 1, 1], 1) == 1.0
    assert precision_at_k(sim, [0, 1], [0, 1, 1], 2) == pytest.approx(0.75)
    assert precision_at_k(sim, [0, 1], [0, 1, 1], 3) == pytest.approx((1 / 3 + 2 / 3) / 2)

def test_p_at_k_class_without_hits_and_ties():
    sim = torch.tensor([[0.5, 0.4, 0.3]])
    assert precision_at_k(sim, [7], [0, 1, 2], 3) == 0.0                      # no candidate of class 7
    tied = torch.zeros(2, 4)
    assert rank_candidates(tied, 4).tolist() == [[0, 1, 2, 3]] * 2               # stable: candidate order
    assert precision_at_k(tied, [0, 1], [1, 0, 0, 1], 1) == 0.5                 # q0 gets class 1 (miss), q1 class 1 (hit)
    # a tie at the K boundary: candidates 1 and 2 share the 2nd score, the first listed is taken
    assert precision_at_k(torch.tensor([[1.0, 0.5, 0.5]]), [0], [0, 1, 0], 2) == 0.5

def test_p_at_k_matches_official_topk_without_ties():
    g = torch.Generator().manual_seed(1)
    S, ql, cl = torch.randn(40, 70, generator=g), torch.randint(0, 5, (40,), generator=g), torch.randint(0, 5, (70,), generator=g)
    for k in (5, 10, 50):
        official = (cl[torch.topk(S, k=k, dim=1).indices] == ql.unsqueeze(1)).to(torch.float32).mean().item()
        assert precision_at_k(S, ql, cl, k) == pytest.approx(official, abs=1e-7)

def test_p_at_k_errors():
    with pytest.raises(ValueError, match='k=5 but there are 3 candidates'): precision_at_k(torch.zeros(1, 3), [0], [0, 0, 0], 5)
    with pytest.raises(ValueError, match='mismatched dimension'): similarity(torch.ones(2, 32), torch.ones(2, 16))

def test_img2txt_cap_is_reported():
    e = torch.eye(4)
    out = img2txt(e, e, [0, 0, 1, 1], ks=(5, 10, 100))
    assert out['img2txt_k_cap'] == 4 and out['img2txt_p_at_100'] == 0.5

# ---------------------------------------------------------------- zero-shot metrics, hand-made
def test_multiclass_accuracy_and_auroc():
    s = np.array([[0.9, 0.1], [0.4, 0.4], [0.2, 0.8]])
    r = multiclass_zeroshot(s, [0, 1, 1])
    assert r['acc'] == pytest.approx(2 / 3)                                        # the tie goes to class 0
    assert r['auroc'] == pytest.approx(1.0)

def test_binary_counts_and_threshold_rule():
    assert binary_counts_metrics([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(
        {'acc': 0.5, 'f1': 0.5, 'recall': 0.5, 'precision': 0.5, 'npv': 0.5})
    assert np.isnan(binary_counts_metrics([1, 0], [0, 0])['precision'])
    assert best_threshold([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9]) == pytest.approx(0.3)  # first t with p > t perfect
    # F1, not accuracy, picks the threshold (the official `current_acc` is compute_acc_np's 2nd value)
    gt = np.array([1, 0, 0, 0, 0, 1, 0, 0], bool); p = np.array([0.3, 0.5, 0.4, 0.9, 0.0, 0.7, 0.6, 0.0])
    assert best_threshold(gt, p, 'f1') == pytest.approx(0.0)                       # F1 is first best at t=0 ...
    assert best_threshold(gt, p, 'acc') == pytest.approx(0.6)                      # ... accuracy would pick 0.6

def test_cv_threshold_matches_official_loop():
    from sklearn.model_selection import StratifiedKFold
    from sklearn.metrics import f1_score, accuracy_score
    rng = np.random.default_rng(3); g = rng.random(200) < 0.35
    p = np.clip(0.5 + 0.25 * (g - 0.5) + 0.2 * rng.standard_normal(200), 0, 1)
    accs, f1s = [], []
    for tr, te in StratifiedKFold(n_splits=10, shuffle=True, random_state=0).split(X=p, y=g):
        bt, best = 0, -1
        for t in np.arange(0, 1 + 0.005, 0.005):             # the official loop, scored by sklearn (not the kit's counts)
            f1 = f1_score(g[tr], p[tr] > t, zero_division=np.nan)
            if f1 > best: bt, best = t, f1
        accs.append(accuracy_score(g[te], p[te] > bt)); f1s.append(f1_score(g[te], p[te] > bt, zero_division=np.nan))
    r = cv_threshold_metrics(g, p)
    assert r['folds'] == 10 and r['acc'] == pytest.approx(np.mean(accs)) and r['f1'] == pytest.approx(np.mean(f1s))

def test_rsna_probability_is_softmax_of_cosines():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    pos, neg = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    r = rsna_zeroshot(img, pos, neg, [1, 0, 1, 0], n_folds=2)
    assert r['auroc'] == 1.0
    assert r['prob'][0] == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item())

def test_bootstrap_ci():
    x = np.r_[np.zeros(100), np.ones(100)]
    lo, hi = bootstrap_ci(lambda i: x[i].mean(), len(x), 400, seed=0)
    assert 0.35 < lo < 0.5 < hi < 0.65
    assert bootstrap_ci(lambda i: x[i].mean(), len(x), 50, seed=1) == bootstrap_ci(lambda i: x[i].mean(), len(x), 50, seed=1)

def test_clean_text_and_prompts():
    assert clean_text('1. Small left effusion.\n2. No pneumothorax. Ok.') == 'small left effusion no pneumothorax'
    p = class_prompts()
    assert sum(map(len, p.values())) == 210 + 15 + 192 + 18 + 54
    assert p['Pleural Effusion'].count('left bilateral pleural effusion') == 2     # the official duplicate is kept

# ---------------------------------------------------------------- metrics against independent oracles
def _pairwise_auroc(y, s):
    "Mann-Whitney by brute force: every (positive, negative) pair, ties count 1/2."
    pos, neg = [b for a, b in zip(y, s) if a], [b for a, b in zip(y, s) if not a]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))

def test_auroc_matches_pair_counting_and_sklearn():
    from sklearn.metrics import roc_auc_score
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)       # the textbook example
    assert auroc([1, 0], [0.5, 0.5]) == 0.5 and auroc([1, 1, 0], [0.1, 0.2, 0.3]) == 0.0
    rng = np.random.default_rng(7)
    for _ in range(5):
        y, s = rng.integers(0, 2, 60), rng.integers(0, 6, 60) / 5                     # many ties
        assert auroc(y, s) == pytest.approx(_pairwise_auroc(y, s), abs=1e-12)
        assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert np.isnan(auroc([1, 1, 1], [0.1, 0.2, 0.3])) and np.isnan(auroc([0, 0], [0.1, 0.2]))   # one class: NaN

def test_multiclass_auroc_is_the_official_macro_and_skips_absent_classes():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(1); y = rng.integers(0, 4, 120); s = rng.random((120, 4)).round(1)
    r = multiclass_zeroshot(s, y)
    assert r['auroc'] == pytest.approx(roc_auc_score(np.eye(4)[y], s), abs=1e-12)   # compute_AUROCs: macro one-vs-rest
    assert r['acc'] == pytest.approx(np.mean([np.argmax(row) == t for row, t in zip(s, y)]))
    y3 = np.where(y == 3, 0, y)                                                     # class 3 absent: averaged over 0..2
    assert multiclass_zeroshot(s, y3)['auroc'] == pytest.approx(np.mean([_pairwise_auroc(y3 == k, s[:, k]) for k in range(3)]))

def test_p_at_k_matches_a_loop_over_queries():
    g = torch.Generator().manual_seed(3)
    S, ql, cl = torch.randn(12, 30, generator=g), torch.randint(0, 3, (12,), generator=g), torch.randint(0, 3, (30,), generator=g)
    for k in (1, 5, 30):
        per = [sum(int(cl[j] == ql[q]) for j in sorted(range(30), key=lambda j: -S[q, j].item())[:k]) / k for q in range(12)]
        assert precision_at_k(S, ql, cl, k, per_query=True).tolist() == pytest.approx(per)
        assert precision_at_k(S, ql, cl, k) == pytest.approx(np.mean(per), abs=1e-6)

def test_binary_counts_match_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
    rng = np.random.default_rng(5)
    for _ in range(5):
        gt, pred = rng.random(50) < 0.4, rng.random(50) < 0.5
        m = binary_counts_metrics(gt, pred)
        assert m['acc'] == pytest.approx(accuracy_score(gt, pred)) and m['f1'] == pytest.approx(f1_score(gt, pred))
        assert m['precision'] == pytest.approx(precision_score(gt, pred)) and m['recall'] == pytest.approx(recall_score(gt, pred))
        assert m['npv'] == pytest.approx(precision_score(~gt, ~pred))                 # NPV = precision of the negatives

def test_threshold_grid_and_brute_force_best():
    assert len(THRESHOLDS) == 201 and THRESHOLDS[0] == 0 and THRESHOLDS[-1] == pytest.approx(1.0)
    rng = np.random.default_rng(2); gt = rng.random(80) < 0.3; p = rng.random(80)
    f1s = [binary_counts_metrics(gt, p > t)['f1'] for t in THRESHOLDS]
    best = max(v for v in f1s if not np.isnan(v))
    assert best_threshold(gt, p) == pytest.approx(THRESHOLDS[f1s.index(best)])    # the first grid point reaching the max

def test_bootstrap_ci_is_percentiles_of_seeded_resamples():
    x = np.random.default_rng(0).random(40)
    rng = np.random.default_rng(4); vals = [x[rng.integers(0, 40, 40)].mean() for _ in range(300)]
    assert bootstrap_ci(lambda i: x[i].mean(), 40, 300, seed=4) == pytest.approx((np.quantile(vals, 0.025), np.quantile(vals, 0.975)))
    assert all(np.isnan(bootstrap_ci(lambda i: np.nan, 5, 10)))                    # every draw NaN: (nan, nan)

def test_text_queries_live_with_retrieval():
    assert list(CHEXPERT8_TEXT_QUERIES) == CHEXPERT_8 and all(len(v) == 5 for v in CHEXPERT8_TEXT_QUERIES.values())

# ---------------------------------------------------------------- builders and bad input
def _row(path, view='Frontal', **labels):
    r = {'Path': path, 'Frontal/Lateral': view, **{c: np.nan for c in CHEXPERT_LABELS}}
    r.update({k.replace('_', ' '): v for k, v in labels.items()}); return r

def test_builders_are_deterministic_and_refuse_short_classes():
    rows = [_row(f'r/train/patient{i:03d}/study1/view1_frontal.jpg', **{c.replace(' ', '_'): 1})
            for i, c in enumerate(CHEXPERT_8 * 4 + CHEXPERT_5 * 4)]
    t = pd.DataFrame(rows)
    a, b = chexpert_5x200(t, 3, seed=0), chexpert_5x200(t.sample(frac=1, random_state=1), 3, seed=0)
    assert a.sha256 == b.sha256                                                     # row order does not matter
    assert chexpert_5x200(t, 3, seed=1).sha256 != a.sha256
    with pytest.raises(ValueError, match=r"5x200 class 'Consolidation': only 4 eligible images, need 5"):
        chexpert_5x200(t, 5)
    q, c = chexpert_8x200(t, 2, 1, seed=0, classes=['Edema', 'Fracture'])
    assert len(q) == 2 and len(c) == 4
    assert not {p.split('/')[2] for p in q.items.path} & {p.split('/')[2] for p in c.items.path}   # patient-disjoint

def test_missing_ids_are_listed(tmp_path):
    es = EvalSet('s', pd.DataFrame({'path': [f'x{i}.jpg' for i in range(8)], 'label': 'Edema'}), CHEXPERT_5)
    (tmp_path/'x0.jpg').write_bytes(b'')
    with pytest.raises(FileNotFoundError, match=r"7 of 8 ids not found under .*: x1.jpg, x2.jpg, x3.jpg, x4.jpg, x5.jpg …"):
        check_images(es, tmp_path)

def test_prompts_for_a_missing_class_fail():
    s5 = EvalSet('s5', pd.DataFrame({'path': ['a'], 'label': ['Edema']}), ['Edema'])
    q = EvalSet('q', pd.DataFrame({'path': ['a'], 'label': ['Edema']}), ['Edema'])
    r = EvalSet('r', pd.DataFrame({'path': ['a'], 'label': ['Normal']}), RSNA_CLASSES)
    with pytest.raises(ValueError, match=r"prompts for class\(es\) \['Atelectasis'"):
        EvalSuite(s5, q, q, r)

def test_id_list_roundtrip_and_checksum(tmp_path):
    es = EvalSet('s', pd.DataFrame({'path': ['a.jpg', 'b.jpg'], 'label': ['Edema', 'Atelectasis']}), CHEXPERT_5)
    sha = write_id_list(es, tmp_path/'s.csv')
    assert read_id_list(tmp_path/'s.csv', classes=CHEXPERT_5, sha256=sha).sha256 == sha
    (tmp_path/'s.csv').write_text((tmp_path/'s.csv').read_text() + 'c.jpg,Edema\n')
    with pytest.raises(ValueError, match='differs from the expected'): read_id_list(tmp_path/'s.csv', sha256=sha)

def test_shipped_lists_verify():
    for name in SHIPPED: assert len(shipped_set(name)) > 0
    assert shipped_set('chexpert_8x200_query').counts() == {c: 10 for c in CHEXPERT_8}
    assert shipped_set('chexpert_8x200_candidate').counts() == {c: 200 for c in CHEXPERT_8}
    # only our own rebuilds ship: no file fetched from another repository
    shipped_files = {f for f, _ in SHIPPED.values()}
    assert set(shipped_sums()) == shipped_files
    from alta_nb.eval_sets import EVALSETS_DIR
    assert {p.name for p in EVALSETS_DIR.iterdir()} == shipped_files | {'SHA256SUMS', 'README.md'}

def _fake_checkouts(d: Path):
    "Tiny ALTA and ConVIRT checkouts with the real file names and columns (made-up ids, labels and text)."
    alta, cv = d/'ALTA', d/'convirt'
    for sub in (alta/'CheXpert5X200_dataset', alta/'RSNA_dataset', cv/'image-retrieval', cv/'text-retrieval'): sub.mkdir(parents=True)
    meta = ['Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA']
    row = lambda p, pos: [p, 'Male', 50, 'Frontal', 'PA'] + [float(c == pos) for c in CHEXPERT_LABELS]
    pd.DataFrame([row(f'r/train/patient{i}/study1/view1_frontal.jpg', c) + [f'made-up report {i}.'] for i, c in enumerate(CHEXPERT_5)],
                 columns=meta + CHEXPERT_LABELS + ['Report Impression']).to_csv(alta/'CheXpert5X200_dataset'/'chexpert_5x200.csv')
    (alta/'RSNA_dataset'/'val_list.txt').write_text('stage_2_train_images/a.dcm 1 \nstage_2_train_images/b.dcm 0 \n')
    (alta/'RSNA_dataset'/'test_list.txt').write_text('stage_2_test_images/c.dcm 0 \n\n')
    pd.DataFrame({'Variable': CHEXPERT_8, 'Path': [f'r/train/patient9{i}/study1/view1_frontal.jpg' for i in range(8)]}).to_csv(
        cv/'image-retrieval'/'query.csv', index=False)
    pd.DataFrame([row(f'r/train/patient8{i}/study1/view1_frontal.jpg', c) for i, c in enumerate(CHEXPERT_8[::-1])],
                 columns=meta + CHEXPERT_LABELS).to_csv(cv/'image-retrieval'/'candidate.csv', index=False)
    pd.DataFrame({'Variable': ['Pneumothorax', 'Edema', 'Pneumothorax'], 'Text': ['made-up a.', 'made-up b.', 'made-up c.']}).to_csv(
        cv/'text-retrieval'/'query.csv', index=False)
    return alta, cv

def test_official_lists_on_fake_checkouts(tmp_path):
    alta, cv = _fake_checkouts(tmp_path)
    sets = official_lists(alta, cv)
    assert set(sets) == {'chexpert_5x200_alta', 'rsna_alta_val', 'rsna_alta_test', 'chexpert_8x200_convirt_query',
                         'chexpert_8x200_convirt_candidate'}
    a5 = sets['chexpert_5x200_alta']
    assert a5.items['label'].tolist() == CHEXPERT_5 and list(a5.items.columns) == ['path', 'label']   # report text dropped
    assert 'made-up report' not in a5.id_list()
    assert sets['rsna_alta_val'].labels.tolist() == [1, 0] and len(sets['rsna_alta_test']) == 1
    assert sets['chexpert_8x200_convirt_query'].items['label'].tolist() == CHEXPERT_8
    assert sets['chexpert_8x200_convirt_candidate'].items['label'].tolist() == CHEXPERT_8[::-1]
    assert convirt_text_queries(cv) == {'Edema': ['made-up b.'], 'Pneumothorax': ['made-up a.', 'made-up c.']}
    assert set(official_lists(convirt_repo=cv)) == {'chexpert_8x200_convirt_query', 'chexpert_8x200_convirt_candidate'}

def test_official_lists_bad_checkouts(tmp_path):
    alta, cv = _fake_checkouts(tmp_path)
    (alta/'RSNA_dataset'/'test_list.txt').unlink()
    with pytest.raises(FileNotFoundError, match=r"RSNA_dataset/test_list.txt not found: expected a checkout of https://github.com/DopamineLcy/ALTA"):
        official_lists(alta_repo=alta)
    with pytest.raises(FileNotFoundError, match=r"text-retrieval/query.csv not found: expected a checkout of https://github.com/yuhaozhang/convirt"):
        convirt_text_queries(tmp_path)
    with pytest.raises(ValueError, match='give alta_repo'): official_lists()
    q = cv/'image-retrieval'/'query.csv'; q.write_text('Class,Path\nEdema,x.jpg\n')
    with pytest.raises(ValueError, match=r"query.csv: missing column\(s\) \['Variable'\]"): official_lists(convirt_repo=cv)
    q.write_text('Variable,Path\nEdema,x.jpg\n')
    c = pd.read_csv(cv/'image-retrieval'/'candidate.csv'); c.loc[2, 'Fracture'] = 1.0; c.to_csv(cv/'image-retrieval'/'candidate.csv', index=False)
    with pytest.raises(ValueError, match=r"candidate.csv row 3: expected exactly one of"): official_lists(convirt_repo=cv)

def _checkout(var: str, repo: str) -> Path:
    "The local checkout of `repo` named by env var `var` (third-party lists are never shipped); skip when unset."
    d = os.environ.get(var)
    if not d: pytest.skip(f'{var} is unset: set it to a checkout of https://github.com/{repo} to check its lists')
    return Path(d)

@pytest.fixture(scope='session')
def alta_checkout(): return _checkout('ALTA_OFFICIAL_REPO', 'DopamineLcy/ALTA')

@pytest.fixture(scope='session')
def convirt_checkout(): return _checkout('CONVIRT_REPO', 'yuhaozhang/convirt')

def test_official_alta_lists_read(alta_checkout):
    sets = official_lists(alta_repo=alta_checkout)
    assert sets['chexpert_5x200_alta'].counts() == {c: 200 for c in CHEXPERT_5}
    assert len(sets['rsna_alta_test']) == 3000 and len(sets['rsna_alta_val']) == 1500
    assert list(sets['chexpert_5x200_alta'].items.columns) == ['path', 'label']

def test_official_convirt_lists_read(convirt_checkout):
    sets = official_lists(convirt_repo=convirt_checkout)
    assert sets['chexpert_8x200_convirt_query'].counts() == {c: 10 for c in CHEXPERT_8}
    assert sets['chexpert_8x200_convirt_candidate'].counts() == {c: 200 for c in CHEXPERT_8}
    assert {c: len(v) for c, v in convirt_text_queries(convirt_checkout).items()} == {c: 5 for c in CHEXPERT_8}

# ---------------------------------------------------------------- the real public label tables (torchxrayvision wheel)
@pytest.fixture(scope='session')
def xrv_wheel():
    "The torchxrayvision 1.5.7 wheel (read from the zip, never installed or redistributed); cached in .whl/."
    d = ROOT/'.whl'; d.mkdir(exist_ok=True)
    found = sorted(d.glob('torchxrayvision-1.5.7-*.whl'))
    if not found:
        p = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', 'torchxrayvision==1.5.7', '-d', str(d)],
                           capture_output=True, text=True, timeout=300)
        found = sorted(d.glob('torchxrayvision-1.5.7-*.whl'))
        if p.returncode or not found: pytest.skip(f'PyPI unreachable, cannot fetch torchxrayvision 1.5.7: {tail(p.stderr, 2)}')
    return zipfile.ZipFile(found[0])

@pytest.fixture(scope='session')
def real_tables(xrv_wheel):
    chex = pd.read_csv(xrv_wheel.open('torchxrayvision/data/chexpert_train.csv.gz'), compression='gzip')
    rsna = pd.read_csv(io.BytesIO(xrv_wheel.read('torchxrayvision/data/kaggle_stage_2_train_labels.csv.zip')), compression='zip')
    return chex, rsna

def test_shipped_lists_rebuild_from_public_tables(real_tables, tmp_path):
    chex, rsna = real_tables
    sets = build_public_lists(chex, rsna, dest=tmp_path)
    sums = shipped_sums()
    for name, es in sets.items(): assert es.sha256 == sums[SHIPPED[name][0]], name
    assert sets['chexpert_5x200'].counts() == {c: 200 for c in CHEXPERT_5}

def test_alta_5x200_list_obeys_gloria_rule(real_tables, alta_checkout):
    chex, _ = real_tables
    alta = official_lists(alta_repo=alta_checkout)['chexpert_5x200_alta']
    t = chex.set_index('Path').loc[alta.items.path].reset_index()
    ok = [bool(gloria_5x200_mask(t.iloc[[i]], cls).iloc[0]) for i, cls in enumerate(alta.items.label)]
    assert all(ok), f'{ok.count(False)} images of ALTA 5x200 break GLoRIA\'s rule'
    assert alta.counts() == {c: 200 for c in CHEXPERT_5}

def test_convirt_lists_obey_exclusive_rule(real_tables, convirt_checkout):
    chex, _ = real_tables
    off = official_lists(convirt_repo=convirt_checkout)
    for name in ('chexpert_8x200_convirt_candidate', 'chexpert_8x200_convirt_query'):
        es = off[name]
        t = chex.set_index('Path').loc[es.items.path].reset_index()
        ok = [bool(exclusive_mask(t.iloc[[i]], cls).iloc[0]) for i, cls in enumerate(es.items.label)]
        assert all(ok), f"{ok.count(False)} images of {name} are not exclusively positive"

def test_alta_rsna_val_agrees_with_kaggle_labels(real_tables, alta_checkout):
    _, rsna = real_tables
    lab = rsna_patient_labels(rsna).set_index('patientId')['Target']
    val = official_lists(alta_repo=alta_checkout)['rsna_alta_val']
    ids = val.items.path.str.split('/').str[1].str.replace('.dcm', '', regex=False)
    assert ids.isin(lab.index).all()
    assert (lab.loc[ids].to_numpy() == val.labels).all()

def test_real_class_counts_are_reported(real_tables):
    chex, _ = real_tables
    with pytest.raises(ValueError, match=r"8x200 class 'Pneumonia': only 296 eligible images, need 410"):
        chexpert_8x200(chex, per_class=400)

# ---------------------------------------------------------------- evaluate() on a toy model whose answer we know
class _Tok:
    "Whitespace tokenizer: word -> fixed id (hash), padded."
    def __call__(self, texts, padding=True, truncation=True, max_length=16, return_tensors='pt'):
        ids = [[1 + (sum(map(ord, w)) % 97) for w in t.split()][:max_length] or [1] for t in texts]
        n = max(map(len, ids))
        return {'input_ids': torch.tensor([i + [0] * (n - len(i)) for i in ids]),
                'attention_mask': torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i in ids])}

class _Oracle(torch.nn.Module):
    "Images are class one-hots (+noise) already; texts map to the class named by their words."
    def __init__(self, classes, noise=0.0):
        super().__init__(); self.w = torch.nn.Parameter(torch.eye(len(classes) + 2)); self.classes = classes; self.noise = noise
        self.tokenizer = _Tok()
    def encode_image(self, x, view_mask=None): return torch.nn.functional.normalize(x @ self.w, dim=-1)
    def encode_text(self, ids, mask, normalize=True):
        tok = _Tok()
        keys = {c: set(tok([c.lower()])['input_ids'][0].tolist()) for c in self.classes}
        out = torch.full((len(ids), len(self.classes) + 2), 0.01)
        for b, row in enumerate(ids.tolist()):
            for k, c in enumerate(self.classes):
                if keys[c] & set(row): out[b, k] += 1
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out

def test_evaluate_on_an_oracle(monkeypatch):
    import alta_nb.retrieval as R                 # embed_images looks `image_dataset` up here
    cfg = get_config('smoke', bootstrap=20)
    allc = ['Atelectasis', 'Cardiomegaly', 'Pneumonia', 'Normal']
    def mk(name, labels, classes, text=False):
        items = pd.DataFrame({'path': [f'{name}/{i}.jpg' for i in range(len(labels))], 'label': labels})
        if text: items['text'] = [f'there is {l.lower()}.' for l in labels]
        return EvalSet(name, items, classes, Path('.'))
    two = ['Atelectasis', 'Cardiomegaly']
    s5 = mk('s5', two * 12, two, text=True); q = mk('q', two * 2, two); c = mk('c', two * 12, two)
    rs = mk('rs', ['Pneumonia', 'Normal'] * 12, RSNA_CLASSES)
    def fake_dataset(es, cfg):
        return [torch.nn.functional.one_hot(torch.tensor(allc.index(l)), 6).float() for l in es.items.label]
    monkeypatch.setattr(R, 'image_dataset', fake_dataset)
    suite = EvalSuite(s5, q, c, rs, class_prompts={'Atelectasis': ['mild atelectasis'], 'Cardiomegaly': ['mild cardiomegaly']},
                      rsna_prompts={'Pneumonia': ['pneumonia'], 'Normal': ['normal']},
                      text_queries={'Atelectasis': ['atelectasis'], 'Cardiomegaly': ['cardiomegaly']})
    out = evaluate(_Oracle(allc), suite, cfg, cache=False)
    for k in ('img2img_p_at_10', 'txt2img_p_at_10', 'img2txt_p_at_5', 'img2txt_p_at_10', 'zeroshot_chexpert_acc', 'rsna_auroc', 'rsna_acc', 'rsna_f1'):
        assert out[k] == pytest.approx(1.0), (k, out[k])
    assert out['img2txt_p_at_100'] == pytest.approx(0.5) and out['img2txt_k_cap'] == 24   # capped: the whole set
    assert out['rsna_auroc_lo'] <= out['rsna_auroc'] <= out['rsna_auroc_hi']
    # diagnostics: 24 unit one-hot images, 12 per class: cos 1 within a class, 0 across -> 2*12*11 of 24*23 ordered pairs
    assert out['img_emb_mean_cos'] == pytest.approx(2 * 12 * 11 / (24 * 23))
    assert out['negation_cos'] == pytest.approx(1.0)                   # the oracle's text side ignores "no"
    from sklearn.metrics import accuracy_score, f1_score
    gt, ones = [l == 'Pneumonia' for l in rs.items.label], [True] * len(rs)
    assert out['rsna_all_pos_acc'] == pytest.approx(accuracy_score(gt, ones)) and out['rsna_all_pos_f1'] == pytest.approx(f1_score(gt, ones))
    assert 0 < out['txt_emb_mean_cos'] < 1

# ---------------------------------------------------------------- collapse and negation diagnostics (#16)
def test_mean_pairwise_cos_is_the_hand_loop():
    E = np.random.default_rng(3).standard_normal((9, 5)) * np.arange(1, 10)[:, None]   # rows of different lengths
    want = np.mean([E[i] @ E[j] / (np.linalg.norm(E[i]) * np.linalg.norm(E[j])) for i in range(9) for j in range(9) if i != j])
    assert mean_pairwise_cos(E) == pytest.approx(want, abs=1e-6)
    assert mean_pairwise_cos(torch.tensor([[1., 0.], [-1., 0.]])) == pytest.approx(-1.0)
    assert mean_pairwise_cos(torch.tensor([[2., 1.], [4., 2.], [6., 3.]])) == pytest.approx(1.0)    # collapsed: one direction
    with pytest.raises(ValueError, match=r'expected embeddings \(N >= 2, D\), got shape \(1, 3\)'): mean_pairwise_cos(np.ones((1, 3)))

class _Bag(torch.nn.Module):
    "Text = sum of a fixed random vector per token id (of the test's `_Tok`); ids in `deaf` are ignored."
    def __init__(self, deaf=()):
        super().__init__(); self.W = torch.nn.Parameter(torch.randn(100, 8, generator=torch.Generator().manual_seed(1))); self.deaf = set(deaf)
    def encode_text(self, ids, mask, normalize=True):
        keep = torch.tensor([[bool(m) and i not in self.deaf for i, m in zip(r, mr)] for r, mr in zip(ids.tolist(), mask.tolist())])
        e = (self.W[ids] * keep[..., None]).sum(1)
        return torch.nn.functional.normalize(e, dim=-1) if normalize else e

def test_negation_cos_against_a_hand_bag_of_words():
    from types import SimpleNamespace
    cfg, tok, m = SimpleNamespace(max_text_len=16, embed_dim=8), _Tok(), _Bag()
    W = m.W.detach().numpy().astype(np.float64)
    def vec(t):
        v = sum(W[1 + (sum(map(ord, w)) % 97)] for w in t.split()); return v / np.linalg.norm(v)
    want = np.mean([vec(f'There is {x}') @ vec(f'There is no {x}') for x in NEGATION_FINDINGS])
    assert negation_cos(m, tok, cfg) == pytest.approx(want, abs=1e-5)
    assert want < 0.999                                                                   # the test can fail: "no" matters
    no_id = tok(['no'])['input_ids'][0, 0].item()
    assert negation_cos(_Bag(deaf={no_id}), tok, cfg, ['edema', 'pneumonia']) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match='non-empty list of finding names'): negation_cos(m, tok, cfg, findings=[])

# ---------------------------------------------------------------- the ordinal check at the teach profile
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('ALTA_SLOW'), reason='trains five teach-profile models (long on a CPU); set ALTA_SLOW=1 to run')
def test_teach_alta_beats_random_init(tmp_path):
    "At the teach profile ALTA (multiview) beats the random-init model on every headline metric."
    p = subprocess.run([str(BIN/'papermill'), str(ROOT/'nbs'/'16_eval_zeroshot.ipynb'), str(tmp_path/'out.ipynb'),
                        '-p', 'profile', 'teach', '-p', 'run_dir', str(tmp_path), '-k', 'alta_nb', '--cwd', str(ROOT/'nbs')],
                       capture_output=True, text=True)
    assert p.returncode == 0, tail(p.stderr, 20)
    m = json.loads((tmp_path/'metrics.json').read_text())
    assert m['alta_beats_random_count'] == 9, m

# ---------------------------------------------------------------- #18 / #14 fixes
def test_f1_is_sklearn_f1_including_no_positive_prediction():
    from sklearn.metrics import f1_score
    cases = [([1, 0, 1, 0], [0, 0, 0, 0]),      # no positive prediction, positives exist: 0, not NaN
             ([0, 0, 0], [1, 0, 1]),            # no true positive, false positives: 0
             ([0, 0], [0, 0]),                  # nothing positive at all: 2TP+FP+FN = 0, NaN
             ([1, 1, 0], [1, 1, 0]), ([1, 1, 0, 0, 1], [1, 0, 1, 0, 0])]
    for gt, pred in cases:
        want = f1_score(gt, pred, zero_division=np.nan)
        got = binary_counts_metrics(gt, pred)['f1']
        assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want), (gt, pred, got, want)
    assert binary_counts_metrics([1, 0, 1, 0], [0, 0, 0, 0])['f1'] == 0.0
    assert np.isnan(binary_counts_metrics([1, 0, 1, 0], [0, 0, 0, 0])['precision'])   # precision stays 0/0

class _RawTower(torch.nn.Module):
    "A text tower whose prompt ids 1 and 2 project to (1, 0) and (0, 10): very different lengths."
    def __init__(self):
        super().__init__(); self.W = torch.nn.Parameter(torch.tensor([[0., 0.], [1., 0.], [0., 10.]]))
    def hidden(self, ids, mask): return ids[:, :, None].float()
    def global_embed(self, h): return self.W[h[:, 0, 0].long()]

class _RawModel(torch.nn.Module):
    def __init__(self): super().__init__(); self.text = _RawTower()
    def encode_text(self, ids, mask): return torch.nn.functional.normalize(self.text.global_embed(self.text.hidden(ids, mask)), dim=-1)

def _raw_tok(texts, **kw):
    return {'input_ids': torch.tensor([[1 if t.startswith('short') else 2] for t in texts]),
            'attention_mask': torch.ones(len(texts), 1, dtype=torch.long)}

def test_prompt_ensemble_averages_raw_projections():
    from types import SimpleNamespace
    from alta_nb.zeroshot import ensemble_class_embeddings, raw_text_projection
    cfg, m = SimpleNamespace(max_text_len=8), _RawModel()
    ids = torch.tensor([[1], [2]])
    assert raw_text_projection(m, ids, torch.ones_like(ids)).tolist() == [[1.0, 0.0], [0.0, 10.0]]   # before the norm
    got = ensemble_class_embeddings(m, _raw_tok, {'Edema': ['short edema', 'long edema'], 'Normal': ['short normal']},
                                    ['Edema', 'Normal'], cfg)
    hand = np.array([[1.0, 10.0], [1.0, 0.0]]); hand /= np.linalg.norm(hand, axis=1, keepdims=True)
    assert got.numpy() == pytest.approx(hand, abs=1e-6)           # mean of (1,0),(0,10) = (0.5,5), then L2 norm
    assert not np.allclose(got[0].numpy(), np.array([1.0, 1.0]) / np.sqrt(2))   # not the mean of normalised ones

def test_real_suite_says_which_lists_it_uses(tmp_path, capsys):
    from alta_nb.evaluate import real_suite
    alta, _ = _fake_checkouts(tmp_path)
    with pytest.raises(Exception, match='not found'): real_suite(tmp_path/'chexpert', tmp_path/'rsna', alta_repo=alta)
    out = capsys.readouterr().out.splitlines()
    assert [l.split(':')[0] for l in out] == ['chexpert_5x200', 'chexpert_8x200', 'rsna_test', 'img2txt']
    assert out[0].startswith('chexpert_5x200: official') and out[1].startswith('chexpert_8x200: rebuilt')
    assert out[2].startswith('rsna_test: official') and out[3].startswith('img2txt: skipped') and 'master_csv' in out[3]

def test_raw_projection_of_the_kit_models_is_encode_text_before_its_norm():
    from alta_nb.alta import build_model
    from alta_nb.data import train_tokenizer
    from alta_nb.zeroshot import raw_text_projection
    cfg = get_config('smoke')
    tok = train_tokenizer(['there is mild edema', 'no pneumonia seen', 'the heart is enlarged'] * 20, vocab_size=200)
    t = tok(['there is mild edema', 'no pneumonia'], padding=True, return_tensors='pt')
    for kind in ('alta', 'clip_scratch', 'mrm'):
        m = build_model(cfg, kind=kind, tokenizer=tok, device='cpu').eval()
        with torch.no_grad():
            r, n = raw_text_projection(m, t['input_ids'], t['attention_mask']), m.encode_text(t['input_ids'], t['attention_mask'])
        assert torch.allclose(torch.nn.functional.normalize(r, dim=-1), n, atol=1e-6), kind
        assert not torch.allclose(r.norm(dim=-1), torch.ones(2)), kind              # really before the norm

def test_rsna_official_pixels_scale_by_the_image_max_without_luts(tmp_path):
    from alta_nb.zeroshot import OfficialRSNAImages, resolve_rsna_pixels, rsna_official_u8
    from alta_nb.images import image_transform, read_dicom
    from alta_nb.synthcxr import write_dicom
    raw = np.array([[0, 100, 200, 300], [50, 1000, 3, 7], [400, 500, 600, 2]], np.uint16)   # 12-bit-like, max 1000
    hand = np.array([[0, 26, 51, 76], [13, 255, 1, 2], [102, 128, 153, 1]], np.uint8)       # round(v * 255 / 1000)
    assert (rsna_official_u8(raw) == hand).all()
    assert (rsna_official_u8(np.array([[-2, 4, -9]], np.int16)) == np.array([[128, 255, 255]], np.uint8)).all()   # |·|, saturated
    # a 12-bit DICOM whose brightest pixel is far below 4095, with a narrow window: the kit and the official reader differ
    img = np.tile(np.linspace(0, 0.25, 64, dtype=np.float32), (64, 1))
    es = EvalSet('toy_rsna', pd.DataFrame({'path': ['a.dcm'], 'label': ['Normal']}), RSNA_CLASSES, tmp_path)
    write_dicom(tmp_path/'a.dcm', img, bits=12, extra={'WindowCenter': 300, 'WindowWidth': 600})
    cfg = get_config('smoke')
    px = np.round(img * 4095).astype(np.uint16)                                             # what write_dicom stores
    got = OfficialRSNAImages(es, cfg)[0]
    assert torch.allclose(got, image_transform(cfg.image_size)(np.rint(px * np.float32(255 / px.max())).astype(np.uint8)))
    assert not torch.allclose(got, image_transform(cfg.image_size)(read_dicom(tmp_path/'a.dcm')), atol=1e-2)   # kit: LUTs
    assert [resolve_rsna_pixels(None, get_config(p)) for p in ('smoke', 'teach', 'paper')] == ['kit', 'kit', 'official']
    from PIL import Image
    Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path/'b.png')
    es_b = EvalSet('bad', pd.DataFrame({'path': ['b.png'], 'label': ['Normal']}), RSNA_CLASSES, tmp_path)
    with pytest.raises(ValueError, match=r"b.png: rsna_pixels='official' reads DICOM stored values"): OfficialRSNAImages(es_b, cfg)[0]
