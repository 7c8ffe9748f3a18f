"""Each lesson's closing *What this shows* paragraph (94_conclusions) is generated from its run's metrics: every
lesson has one, it renders on this session's smoke run and the committed teach run without a template left in it, and it changes when
the run's numbers change (no number typed into the prose)."""
import json, re
import pytest
from conftest import ROOT
from alta_nb.conclusions import CONCLUSIONS, what_this_shows
from alta_nb.reproduce import find_notebooks

TEACH = ROOT/'figures'/'teach'/'metrics.json'     # committed; the smoke run's own come from `smoke_run`


def test_every_lesson_has_a_conclusion():
    lessons = [p.stem for p in find_notebooks(ROOT/'nbs')]
    assert [s for s in lessons if s not in CONCLUSIONS] == []
    assert [s for s in CONCLUSIONS if s not in lessons] == []          # no conclusion for a lesson that is gone


def _moved(v):
    "Every number of a metric value moved (bools flipped), recursively."
    if isinstance(v, bool): return not v
    if isinstance(v, int): return v + 3
    if isinstance(v, float): return v * 1.37 + 0.011
    if isinstance(v, dict): return {k: _moved(x) for k, x in v.items()}
    if isinstance(v, list): return [_moved(x) for x in v]
    return v


@pytest.mark.parametrize('profile', ['smoke', 'teach'])
def test_conclusions_render_from_the_run(profile, request):
    run = request.getfixturevalue('smoke_run') if profile == 'smoke' else json.loads(TEACH.read_text())
    bad = []
    for stem, m in run.items():
        if not m: continue
        text = what_this_shows(stem, m, profile)
        body = text.split('\n\n*Profile')[0].strip()
        if not body: bad.append(f'{stem}: empty paragraph on the {profile} run')
        if (t := re.search(r'\{\w+|\bnan\b|PLACEHOLDER', text)): bad.append(f'{stem}: template left: {t[0]!r}')
        if re.search(r'\d', body) and what_this_shows(stem, _moved(m), profile) == text:
            bad.append(f'{stem}: its numbers do not follow the metrics (typed in?)')
    assert bad == [], '\n'.join(bad)
