"""The goldens hold by measurement (issue #29): every float golden's tolerance is at least SAFETY x the worst
deviation the calibration measured under platform perturbations and at least its granularity; deliberate
changes (an lr x1.5, one epoch fewer — recorded by `make goldens` — and two labels swapped) fail readably."""
import json, math
import pytest
from alta_nb.goldens import (load_goldens, compare_goldens, granularity, float_granularity, EVENTS, SAFETY,
                             MUTATIONS, margins)
from conftest import ROOT

GOLD = ROOT/'tests'/'goldens'

def _plain(goldens: dict) -> dict:
    "The run the goldens describe (each golden's value), for the set sizes `granularity` reads."
    return {s: {k: (v.get('value') if isinstance(v, dict) else v) for k, v in g.items()} for s, g in goldens.items()}

def test_every_float_golden_is_calibrated():
    goldens = load_goldens(GOLD); run = _plain(goldens)
    bad, n = [], 0
    for s, g in goldens.items():
        for k, v in g.items():
            val = v.get('value') if isinstance(v, dict) else v
            if not isinstance(val, float) or math.isnan(val): continue
            n += 1
            if not isinstance(v, dict) or 'dev' not in v or 'abs' not in v:
                bad.append(f'{s}.{k}: no measured tolerance (run `make goldens`)'); continue
            step = granularity(k, run) or float_granularity(val)
            if v['abs'] < SAFETY * v['dev']: bad.append(f"{s}.{k}: tolerance {v['abs']} < {SAFETY} x dev {v['dev']}")
            if v['abs'] < step: bad.append(f"{s}.{k}: tolerance {v['abs']} below its granularity {step}")
    assert n > 300, f'only {n} float goldens'
    assert not bad, '\n'.join(bad)
    rows = margins(goldens)
    assert min(r[3] for r in rows) >= SAFETY
    assert sum(math.isfinite(r[3]) for r in rows) > 20, 'the calibration saw almost no deviation: did it run?'

@pytest.mark.parametrize('name', sorted(MUTATIONS))
def test_a_recorded_deliberate_change_fails(name):
    "`make goldens` keeps each mutated run's metrics: the goldens must still tell them apart, readably."
    p = GOLD/'mutants'/f'{name}.json'
    assert p.exists(), f'{p} missing: run `make goldens`'
    diffs = compare_goldens(json.loads(p.read_text()), load_goldens(GOLD))
    trained = [d for d in diffs if 'off by' in d]
    assert len(trained) >= 10, f'{name}: only {len(diffs)} differences:\n' + '\n'.join(diffs)
    assert all(d.split(':')[0].count('.') == 1 for d in trained), trained[:3]    # 'stem.metric: ...'

def test_two_swapped_labels_fail(smoke_run):
    "Two labels of the 5x200 set swapped: its id list's sha256 changes, and the goldens name it."
    from alta_nb.core import runs_dir
    from alta_nb.eval_sets import read_id_list
    es = read_id_list(runs_dir()/'smoke'/'14_eval_sets'/'evalsets'/'chexpert_5x200.csv', 'chexpert_5x200')
    items = es.items.copy()
    i, j = 0, next(j for j, l in enumerate(items.label) if l != items.label[0])
    items.loc[[i, j], 'label'] = items.label[[j, i]].to_numpy()
    swapped = type(es)(es.name, items, es.classes, es.root)
    run = json.loads(json.dumps(smoke_run))
    run['14_eval_sets']['chexpert_5x200_sha256'] = swapped.sha256
    diffs = compare_goldens(run, load_goldens(GOLD))
    want = f"14_eval_sets.chexpert_5x200_sha256: golden {es.sha256!r}, got {swapped.sha256!r}"
    assert swapped.sha256 != es.sha256 and want in diffs, diffs

def test_a_deliberate_change_reads_as_a_diff(smoke_run):
    "Two retrieval hits are noise; a change beyond the tolerance or a count is a change, and the diff says what."
    goldens = load_goldens(GOLD)
    key = next(k for k in smoke_run['16_eval_zeroshot'] if k.endswith('img2img_p_at_10'))
    g = granularity(key, smoke_run)
    tol = goldens['16_eval_zeroshot'][key]['abs']
    run = json.loads(json.dumps(smoke_run))
    run['16_eval_zeroshot'][key] = goldens['16_eval_zeroshot'][key]['value'] + EVENTS * g   # two hits: held
    assert not compare_goldens(run, goldens)
    run['16_eval_zeroshot'][key] += tol                                  # past the tolerance: a change
    run['14_eval_sets']['chexpert_5x200_classes'] -= 1
    diffs = compare_goldens(run, goldens)
    assert any(d.startswith(f'16_eval_zeroshot.{key}: golden') and 'off by' in d for d in diffs), diffs
    assert any(d.startswith('14_eval_sets.chexpert_5x200_classes: golden') for d in diffs), diffs
