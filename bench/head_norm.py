"""Does standardising the frozen tower's features in front of the image head stop the embedding collapse, seed by seed?

`head_init='batchnorm'` (lesson 11: a BatchNorm without affine parameters in front of the image projection head) is
one of the options `18_ablations` chooses among on the validation split, at its choice seed only. This bench trains
ALTA (temporal multiview) with a control `head_init` and with `'batchnorm'` at the seeds you give, through the
engine's cache (`ALTA_RUNS`, shared with the lessons: the two arms are different configs, so different cached models),
and prints per seed and arm the collapse diagnostics of `evaluate` (`img_feat_mean_cos`: the 5x200 images before the
head; `img_emb_mean_cos`: after it; `logit_scale`), `validation_mrr` and the headline metrics, then the BatchNorm arm
over the control as differences measured in this one run.

    python bench/head_norm.py --profile teach --seeds 0 --head-init centered   # ~2 min per arm and seed on 2 cores
    python bench/head_norm.py --profile smoke --seeds 0,1                      # seconds
"""
import argparse, json, os

os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

KEYS = ['img_feat_mean_cos', 'img_emb_mean_cos', 'txt_emb_mean_cos', 'logit_scale', 'val_mrr', 'img2img_p_at_10',
        'txt2img_p_at_10', 'img2txt_p_at_10', 'zeroshot_chexpert_acc', 'rsna_auroc', 'rsna_f1']


def arm(profile: str, seed: int, head_init: str) -> dict:
    "Train (or read from the cache) ALTA with `head_init` at `seed` and score it."
    import time
    from alta_nb.core import get_config
    from alta_nb.stages import pretrained
    from alta_nb.evaluate import eval_suite_for, evaluate
    from alta_nb.ablations import validation_mrr
    cfg = get_config(profile, seed=seed, head_init=head_init)
    t = time.perf_counter(); m = pretrained(cfg, 'alta'); secs = time.perf_counter() - t
    r = evaluate(m, eval_suite_for(cfg, verbose=False), cfg)
    r['val_mrr'] = validation_mrr(m, cfg)
    return dict(head_init=head_init, seed=seed, train_s=round(secs, 1), **{k: round(float(r[k]), 4) for k in KEYS if k in r})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--profile', default='smoke'); ap.add_argument('--seeds', default='0')
    ap.add_argument('--head-init', default='default', help="the control arm's head_init ('default' or 'centered')")
    a = ap.parse_args()
    if a.head_init == 'batchnorm': ap.error("--head-init: the control must differ from the 'batchnorm' arm")
    rows = []
    for s in [int(x) for x in a.seeds.split(',')]:
        for h in (a.head_init, 'batchnorm'):
            rows.append(arm(a.profile, s, h)); print(json.dumps(rows[-1]), flush=True)
    import pandas as pd
    df = pd.DataFrame(rows).set_index(['seed', 'head_init'])[KEYS]
    diff = df.xs('batchnorm', level='head_init') - df.xs(a.head_init, level='head_init')
    print(f'\nprofile {a.profile}; per seed and head_init:\n{df.round(4).to_string()}')
    print(f'\nbatchnorm − {a.head_init}, per seed:\n{diff.round(4).to_string()}')


if __name__ == '__main__':
    main()
