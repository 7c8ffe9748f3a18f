"""Does the teach pretraining transfer at all? (issue #31) On the validation splits only, choosing seeds.

ALTA can only adapt the towers it starts from; the paper's claim (ALTA beats CLIP from scratch at a fifth of the
compute) presupposes that MRM pretraining, and CXR-BERT, are better starts than random weights. This bench asks it
directly at teach: CLIP from scratch (every weight trains; the global and local InfoNCE; unmasked views; the
profile's settings) is trained from four starts, and scored beside ALTA (frozen towers, adapters) as the profile
trains it:

  random        the kit's random init (`clip_scratch` as 18_ablations trains it)
  mrm_image     the image tower from the teach MRM (05; the same weights ALTA freezes), text random
  standin_text  the text tower from the teach stand-in (13: MRM's report BERT + section matching), image random
  both          both towers pretrained: full fine-tuning from what ALTA freezes

Per seed: validation image->report MRR with four slots and with the frontal alone (60 studies, chance 0.078), the
same MRR on as many training studies (did it fit its own pairs?), and, on the pretraining draw's validation split,
the five-class zero-shot accuracy with the kit's class prompts and the pneumonia AUROC with its RSNA prompts
(`teach_levers.zs5`, `teach_levers.pneu`). No evaluation set is read.

    python bench/transfer.py seeds=100,101,102 [arms=alta,random,...] [field=value ...]
"""
import sys, tempfile, time
sys.path.insert(0, str(__import__('pathlib').Path(__file__).parent))
import pandas as pd
import teach_levers as tl
from alta_nb.core import get_config, parse_overrides, seed_everything
from alta_nb.alta import build_model
from alta_nb.data import study_dataloader
from alta_nb.learner import loader_tokenizer
from alta_nb.train import fit
from alta_nb.stages import pretrained, text_stand_in

STARTS = ('random', 'mrm_image', 'standin_text', 'both')


def clip_from(c, start: str):
    "CLIP from scratch trained by `fit` from `start` (not cached: each call trains)."
    dl = study_dataloader(c, split='train'); tok = loader_tokenizer(dl, c)
    seed_everything(c.seed)
    model = build_model(c, 'clip_scratch', tok, 'cpu')
    if start != 'random':
        mrm = pretrained(c, 'mrm').state_dict()
        if start in ('mrm_image', 'both'): model.load_mrm_state(mrm)
        if start in ('standin_text', 'both'): model.load_text_state(text_stand_in(c, mrm))
    with tempfile.TemporaryDirectory() as d: fit(model, dl, c, d, progress=False)
    model.tokenizer = tok
    return model.eval()


def score(m, c) -> dict:
    r = tl.retrieval_row(m, c)
    row = {k: round(r[j], 3) for k, j in (('val_mrr_4', 'val_mrr_all_slots'),
                                          ('val_mrr_frontal', 'val_mrr_frontal'),
                                          ('train_mrr', 'train_mrr_all_slots'))}
    z = tl.zs5(m, c.pretraining())
    return row | dict(zs5_acc=z['acc'], zs5_n=z['n'], pneu_auroc=tl.pneu(m, c.pretraining()))


def main(argv):
    seeds = [int(x) for a in argv if a.startswith('seeds=') for x in a[6:].split(',')] or [100]
    arms = [x for a in argv if a.startswith('arms=') for x in a[5:].split(',')] or ('alta',) + STARTS
    if bad := [a for a in arms if a not in ('alta',) + STARTS]:
        sys.exit(f"arms: unknown {bad}; choose from {('alta',) + STARTS}")
    extra = parse_overrides([a for a in argv if '=' in a and not a.startswith(('seeds=', 'arms='))])
    rows = []
    for seed in seeds:
        c = get_config('teach', seed=seed, **extra)
        for arm in arms:
            t0 = time.time()
            m = pretrained(c, 'alta') if arm == 'alta' else clip_from(c, arm)
            rows.append(dict(arm=arm, seed=seed) | score(m, c) | dict(s=round(time.time() - t0)))
            print('ROW', rows[-1], flush=True)
    df = pd.DataFrame(rows); print(df.to_string(index=False))
    agg = df.drop(columns=['seed', 's', 'zs5_n']).groupby('arm', sort=False).agg(['mean', 'std'])
    print(agg.round(3).to_string())


if __name__ == '__main__': main(sys.argv[1:])
