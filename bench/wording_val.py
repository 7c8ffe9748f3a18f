"""SynthCXR's `report_wording` at teach (issue #31), on the validation splits only, at the choosing seed 100.

Per wording, ALTA is trained by the kit's stage path (MRM, stand-in and alignment pretrained afresh for each
wording, cached like any stage) and scored with `teach_levers.variant` (validation MRR, training MRR, report
cosine), then: the five-class zero-shot accuracy and AUROC of validation frontals with the kit's class prompts
(studies positive for exactly one of the five; the aligned draw's and the pretraining draw's validation split),
the pneumonia AUROC of the RSNA prompts on validation, `negation_cos`, the share of letter pieces in the prompts'
tokens (a diagnostic, never a yardstick), and the share of the Open-i reports' word tokens that the pretraining
corpus covers (../shared/realcxr, read in place; left out when absent). No evaluation set is read.

    python bench/wording_val.py plain real seeds=100,101,102   # [field=value ...] changes the base config
"""
import sys, re, collections, time
sys.path.insert(0, str(__import__('pathlib').Path(__file__).parent))
import numpy as np, pandas as pd
import teach_levers as tl
from alta_nb.core import get_config, parse_overrides, repo_root
from alta_nb.stages import pretrained
from alta_nb.zeroshot import class_prompts
from alta_nb.retrieval import negation_cos
from alta_nb.data import alta_table
from alta_nb.readers import read_openi_reports
W = lambda s: re.findall(r"[a-z]+", str(s).lower())
OPENI = repo_root().parent/'shared'/'realcxr'/'NLMCXR_reports.tgz'
if OPENI.exists():
    oi = read_openi_reports(OPENI)
    oc = collections.Counter(w for t in oi.findings.fillna('') + ' ' + oi.impression.fillna('') for w in W(t))
else: oc = None; print(f'{OPENI}: absent, so no Open-i coverage')

words, rows = [a for a in sys.argv[1:] if '=' not in a], []
seeds = [int(x) for a in sys.argv[1:] if a.startswith('seeds=') for x in a[6:].split(',')] or [100]
extra = parse_overrides([a for a in sys.argv[1:] if '=' in a and not a.startswith('seeds=')])
for w, seed in [(w, sd) for w in words for sd in seeds]:
    c = get_config('teach', seed=seed, report_wording=w, **extra); t0 = time.time()
    row = tl.variant(c, 'official'); m = pretrained(c, 'alta')
    toks = [t for ps in class_prompts().values() for p in ps for t in m.tokenizer.tokenize(p)]
    sc = collections.Counter(x for t in alta_table(c.pretraining(), 'train').report for x in W(t))
    row = dict(wording=w, seed=seed, val_mrr=row['val_mrr_all_slots'], val_mrr_frontal=row['val_mrr_frontal'],
               train_mrr=row['train_mrr_all_slots'], txt_cos=row['txt_cos'],
               vocab=len(m.tokenizer), prompt_pieces=round(np.mean([t.startswith('##') for t in toks]), 3),
               openi_cov=round(sum(n for x, n in oc.items() if x in sc) / sum(oc.values()), 3) if oc else None,
               openi_top300=sum(x in sc for x, _ in oc.most_common(300)) if oc else None,
               neg_cos=round(negation_cos(m, m.tokenizer, c), 3))
    for tag, cc in (('', c), ('pre_', c.pretraining())):
        z = tl.zs5(m, cc); row |= {f'{tag}zs5_n': z['n'], f'{tag}zs5_acc': z['acc'], f'{tag}zs5_auroc': z['auroc'],
                                f'{tag}pneu_auroc': tl.pneu(m, cc)}
    row['s'] = round(time.time() - t0); rows.append(row); print('ROW', row, flush=True)
df = pd.DataFrame(rows); print(df.to_string())
print(df.drop(columns='seed').groupby('wording').agg(['mean', 'std']).round(3).T.to_string())
