"Beyond-the-paper benchmarks (20_beyond): labels from hand-made answer-key rows and from the generator's states, metrics vs scikit-learn."
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from alta_nb.beyond import (LATERAL_FINDINGS, TEMPORAL_FINDINGS, BENCH_SEED, balanced_accuracy, embed_bench, lateral_labels,
                            temporal_labels)
from alta_nb.synth_progression import FINDINGS, plan_synthcxr

def _row(sid, prior=-1, lateral='d1', only='', **sev):
    return dict(study_id=sid, prior_study_id=prior, lateral=lateral, lateral_only_findings=only,
                **{f'sev_{f}': sev.get(f, 0) for f in FINDINGS})

TOY = pd.DataFrame([
    _row(1, effusion=1, only='effusion'),                                   # small effusion, lateral-only: positive
    _row(2, effusion=2, consolidation=1, only='consolidation'),             # large effusion: no item; retrocardiac: positive
    _row(3, lateral='-1', effusion=1, only='effusion'),                     # no lateral: never an item
    _row(4, prior=1, effusion=2, edema=1),                                  # effusion 1 -> 2, edema 0 -> 1: worsening
    _row(5, prior=4, effusion=2),                                           # effusion 2 -> 2 stable, edema 1 -> 0 improving
    _row(6, prior=5, lateral='-1', pneumothorax=2),                         # effusion 2 -> 0 improving, pneumothorax new
])

def _as_dict(df): return {(int(r.study_id), r.finding): int(r.label) for r in df.itertuples()}

def test_lateral_labels_hand_made():
    assert _as_dict(lateral_labels(TOY)) == {
        (1, 'effusion'): 1,                          # 2, 4, 5: frontal-visible effusions, left out; 3, 6: no lateral
        (1, 'consolidation'): 0, (2, 'consolidation'): 1, (4, 'consolidation'): 0, (5, 'consolidation'): 0}

def test_temporal_labels_hand_made():
    assert _as_dict(temporal_labels(TOY)) == {
        (4, 'effusion'): 2, (4, 'edema'): 2, (5, 'effusion'): 1, (5, 'edema'): 0, (6, 'effusion'): 0, (6, 'pneumothorax'): 2}

def test_labels_bad_input():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['lateral_only_findings'\]"):
        lateral_labels(TOY.drop(columns='lateral_only_findings'))
    with pytest.raises(ValueError, match='prior_study_id'):
        temporal_labels(TOY.assign(prior_study_id=[-1, -1, -1, 99, 4, 5]))

def test_labels_match_the_generator_states():
    "On a generated plan: items re-derived from the studies' states in time order (the clinical rule, not the code's)."
    plan = plan_synthcxr(20, 3, seed=BENCH_SEED, size=32, p_lateral=1.0, p_no_frontal=0.0)
    lat, tmp, prev = {}, {}, {}
    for s in plan['studies']:                                   # time order within each subject
        st, has_lat = s['state'], any(v in ('LATERAL', 'LL') for v in s['views'])
        if has_lat:
            small_eff, retro = st['effusion'][0] == 1, st['consolidation'][0] > 0 and st['consolidation'][1] == 'retrocardiac'
            for f, pos in (('effusion', small_eff), ('consolidation', retro)):
                if pos or st[f][0] == 0: lat[(s['study_id'], f)] = int(pos)
        p = prev.get(s['subject_id'])
        if p is not None:
            for f in TEMPORAL_FINDINGS:
                a, b = p[f][0], st[f][0]
                if a or b: tmp[(s['study_id'], f)] = 0 if b < a else 1 if b == a else 2
        prev[s['subject_id']] = st
    assert _as_dict(lateral_labels(plan['truth'])) == lat and len(lat) > 0
    assert _as_dict(temporal_labels(plan['truth'])) == tmp and set(tmp.values()) == {0, 1, 2}

def test_balanced_accuracy_vs_sklearn():
    rng = np.random.default_rng(0)
    for k in (2, 3):
        y, p = rng.integers(0, k, 200), rng.integers(0, k, 200)
        assert balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p))
    assert balanced_accuracy([0, 0, 0, 1], [0, 0, 0, 0]) == pytest.approx(0.5)     # all-majority = chance
    with pytest.raises(ValueError, match='balanced_accuracy'): balanced_accuracy([0, 1], [0])

def test_embed_bench_rejects_unknown_views():
    with pytest.raises(ValueError, match="expected 'frontal'"): embed_bench(None, None, None, views=('lateral',))
    with pytest.raises(ValueError, match="expected 'frontal'"): embed_bench(None, None, None, views=('frontal', 'side'))

def _probe_items(n_subj=10, per=6, seed=0):
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subj), per)
    label = np.repeat(rng.permutation(np.tile([0, 1], n_subj // 2)), per)       # every study of a subject shares its label
    return pd.DataFrame(dict(row=np.arange(len(subj)), finding='effusion', label=label)), subj

def test_linear_probe_reads_a_signal_and_cannot_memorise_subjects():
    "Grouped folds: a label written in a coordinate is read; a subject's one-hot identity (which would give the label away to a probe that saw the subject) is not."
    from alta_nb.beyond import linear_probe_acc
    items, subj = _probe_items()
    signal = np.c_[items.label * 2.0 - 1, np.random.default_rng(1).normal(size=(len(items), 2))]
    assert linear_probe_acc(signal, items, subj) == 1.0
    identity = np.eye(subj.max() + 1)[subj]
    assert linear_probe_acc(identity, items, subj) <= 0.6            # held-out subjects' one-hots are all new directions

def test_linear_probe_one_subject_is_a_one_line_error():
    from alta_nb.beyond import linear_probe_acc
    items, _ = _probe_items()
    with pytest.raises(ValueError, match="finding 'effusion' has 1 subject"): linear_probe_acc(np.zeros((len(items), 2)), items, np.zeros(len(items)))


def test_compare_conditions_only_where_the_profile_asks():
    from alta_nb.core import get_config
    from alta_nb.beyond import beyond_conditions, CONDITIONS, COMPARE_CONDITIONS
    from alta_nb.ablations import profile_variants, variant_config
    smoke, teach = get_config('smoke'), get_config('teach', beyond_compare=True)
    assert beyond_conditions(smoke) == CONDITIONS and not smoke.beyond_compare
    assert beyond_conditions(get_config('teach')) == CONDITIONS      # no profile sets it (budget)
    assert set(beyond_conditions(teach)) == set(CONDITIONS) | set(COMPARE_CONDITIONS)
    # the compare variant is trained where 20_beyond first asks for it, never scored by 18
    for cfg in (smoke, teach): assert 'alta_multiview_compare' not in profile_variants(cfg)
    kind, c = variant_config('alta_multiview_compare', teach)
    assert (kind, c.multiview, c.n_views) == ('alta', 'compare', 4)
    assert c.replace(multiview=teach.multiview) == teach      # the fusion is its only difference
