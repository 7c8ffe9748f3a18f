"""Does a stand-in text tower that hears "no" more keep hearing it after alignment, and what does validation say?

The stand-in (13_stages) learns section matching with a negation term weighted by `text_negation_weight`, for
`text_rsm_steps` steps. This bench trains, for each `steps:weight` pair, the stand-in and then ALTA at the protocol's
choice seed (`CHOICE_SEED`, never reported) with the profile's other settings, through the engine's cache
(`ALTA_RUNS`, shared with the lessons), and prints per pair the stand-in's own `negation_cos` and validation
section-matching MRR, then the aligned model's `negation_cos` and `validation_mrr` (the protocol's score). Only the
validation split and label-free prompts are read: no evaluation set.

    python bench/standin_negation.py --profile teach --pairs 600:3 900:3 600:6   # ~3 min per new pair on 2 cores
    python bench/standin_negation.py --profile smoke --pairs 20:1 20:3           # seconds
"""
import argparse, os, time

os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')


def pair(profile: str, steps: int, weight: float) -> dict:
    "Train (or read from the cache) the stand-in and ALTA at the choice seed with `steps` and `weight`; score both."
    from alta_nb.core import get_config
    from alta_nb.stages import pretrained, section_pairs, text_stand_in
    from alta_nb.text import build_text_tower
    from alta_nb.ablations import CHOICE_SEED, validation_mrr
    from alta_nb.retrieval import negation_cos, embed_texts, mean_reciprocal_rank
    cfg = get_config(profile, seed=CHOICE_SEED, text_rsm_steps=steps, text_negation_weight=weight)
    t = time.perf_counter(); m = pretrained(cfg, 'alta'); secs = time.perf_counter() - t
    stand_in = build_text_tower(cfg, m.tokenizer, adapters=False)       # as 13_stages scores it
    stand_in.load_state_dict(text_stand_in(cfg), strict=False); stand_in.eval()
    val = section_pairs(cfg, 'validate')                                 # the validation reports validation_mrr reads
    enc = lambda xs: embed_texts(stand_in, m.tokenizer, list(xs), cfg, cache=False)
    return dict(steps=steps, weight=weight, standin_negation_cos=negation_cos(stand_in, m.tokenizer, cfg),
                standin_val_section_mrr=mean_reciprocal_rank(enc(f for f, _ in val) @ enc(i for _, i in val).T),
                aligned_negation_cos=negation_cos(m, m.tokenizer, cfg), aligned_val_mrr=validation_mrr(m, cfg), seconds=round(secs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--profile', default='teach'); ap.add_argument('--pairs', nargs='+', default=['600:3'])
    a = ap.parse_args(argv)
    rows = [pair(a.profile, int(p.split(':')[0]), float(p.split(':')[1])) for p in a.pairs]
    cols = list(rows[0])
    print('| ' + ' | '.join(cols) + ' |\n|' + '---|' * len(cols))
    for r in rows: print('| ' + ' | '.join(f'{r[c]:.3f}' if isinstance(r[c], float) else str(r[c]) for c in cols) + ' |')


if __name__ == '__main__':
    main()
