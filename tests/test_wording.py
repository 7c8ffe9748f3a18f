"""SynthCXR's `report_wording` (01_synthcxr, `synth_wording`): real reports' words, same labels and pictures.

The oracles are independent of the rewrite tables: a hand-made keyword per CheXpert label, and the word
counts of a real report corpus (Open-i, read in place from ../shared/realcxr; skipped without it)."""
import collections, re
import pytest
from alta_nb.synth_progression import plan_synthcxr

# a positive label must stay named in the reworded report (hand-made, as a labeler reads it)
NAMED_BY = {'Atelectasis': ('atelectasis',), 'Pleural Effusion': ('effusion',),
            'Consolidation': ('consolidation',), 'Lung Opacity': ('opacit',),
            'Pneumothorax': ('pneumothorax',), 'Edema': ('edema',), 'Pneumonia': ('pneumonia',),
            'Cardiomegaly': ('cardiomegaly', 'enlarge'), 'Lung Lesion': ('nodul',)}
WORDS = lambda text: re.findall(r'[a-z]+', text.lower())


@pytest.fixture(scope='module')
def plans():
    return {w: plan_synthcxr(40, 4, seed=3, wording=w) for w in ('plain', 'real')}


def test_same_studies_labels_and_pictures(plans):
    p, r = plans['plain'], plans['real']
    assert p['truth'].equals(r['truth']) and p['images'].equals(r['images'])
    assert [s['labels'] for s in p['studies']] == [s['labels'] for s in r['studies']]
    changed = sum(a['report'] != b['report'] for a, b in zip(p['studies'], r['studies']))
    assert changed > len(p['studies']) // 2, changed


def test_positive_findings_stay_named(plans):
    checked = 0
    for s in plans['real']['studies']:
        text = ' '.join(s['report'].lower().split())
        if s['report_kind'] == 'empty': continue
        for label, v in s['labels'].items():
            if v == 1 and label in NAMED_BY and 'IMPRESSION' in s['report']:
                assert any(k in text for k in NAMED_BY[label]), (label, s['report'])
                checked += 1
    assert checked > 50, checked


def test_real_wording_uses_more_words(plans):
    vocab = {w: {x for s in p['studies'] for x in WORDS(s['report'])} for w, p in plans.items()}
    assert vocab['plain'] < vocab['real']          # every plain word kept, new ones added


def test_unknown_wording_is_a_clear_error():
    with pytest.raises(ValueError, match="report wording 'fancy'"):
        plan_synthcxr(6, 2, wording='fancy')


def test_real_wording_covers_more_of_real_reports(realcxr, plans):
    from alta_nb.readers import read_openi_reports
    oi = read_openi_reports(realcxr/'NLMCXR_reports.tgz')
    real = collections.Counter(x for t in oi.findings.fillna('') + ' ' + oi.impression.fillna('')
                               for x in WORDS(t))
    cover = {w: sum(n for x, n in real.items() if x in {y for s in p['studies']
                                                        for y in WORDS(s['report'])})
             for w, p in plans.items()}
    top = {w: sum(x in {y for s in p['studies'] for y in WORDS(s['report'])}
                  for x, _ in real.most_common(300)) for w, p in plans.items()}
    print('Open-i word tokens covered', cover, 'of', sum(real.values()), '; top-300 types', top)
    assert cover['real'] > cover['plain'] and top['real'] > top['plain']
