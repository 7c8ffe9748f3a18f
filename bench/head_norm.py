"""Does the image-embedding collapse start in the image tower, and does standardising the tower's features stop it?

An experiment beside the kit (#16), not a kit option: ALTA (temporal multiview) trained by the engine as every
lesson trains it, with one change made at run time — a BatchNorm without affine parameters on the pooled image
features, in front of the image projection head (the head then sees features centred and scaled by the batch,
so the large direction that every frozen-tower feature shares cannot reach the embeddings). Each arm is trained
in this bench's own cache folder (`--runs`), so a patched model can never be read back by a lesson; the MRM and
stand-in text pretraining of a seed can be shared from a finished run's cache (`--share`: linked, not copied).

Per seed and arm it prints the collapse diagnostics of `evaluate` (`img_feat_mean_cos`: the 5x200 images before the
head; `img_emb_mean_cos`: after it; `logit_scale`), `validation_mrr` (the protocol's validation score) and the
headline metrics, then the BatchNorm arm over the control as differences measured in this one run.

    python bench/head_norm.py --profile teach --seeds 0 --share _runs/data          # ~5 min per arm and seed on 2 cores
    python bench/head_norm.py --profile smoke --seeds 0,1                           # seconds
"""
import argparse, json, os, sys, time
from pathlib import Path

KEYS = ['img_feat_mean_cos', 'img_emb_mean_cos', 'txt_emb_mean_cos', 'logit_scale', 'val_mrr', 'img2img_p_at_10',
        'txt2img_p_at_10', 'img2txt_p_at_10', 'zeroshot_chexpert_acc', 'rsna_auroc', 'rsna_f1']


def link_pretraining(share: Path, runs: Path, kinds=('mrm-', 'text_rsm-')):
    "Link the data and the `kinds` models of a finished run's cache into this bench's cache (the patched arm: never ALTA's)."
    (runs/'data'/'models').mkdir(parents=True, exist_ok=True)
    for d in share.iterdir():
        if d.name not in ('models', 'embeddings') and not (runs/'data'/d.name).exists(): (runs/'data'/d.name).symlink_to(d.resolve())
    for m in (share/'models').iterdir():
        if m.name.startswith(kinds) and not (runs/'data'/'models'/m.name).exists():
            (runs/'data'/'models'/m.name).symlink_to(m.resolve())


def patch_batchnorm_head():
    "From now on every ALTA built gets `BatchNorm1d(vit_dim, affine=False)` in front of its image projection head."
    import torch.nn as nn
    from alta_nb import alta
    orig = alta.ALTA.__init__
    def init(self, cfg, kind='alta', tokenizer=None):
        orig(self, cfg, kind, tokenizer)
        self.image_projection_head = nn.Sequential(nn.BatchNorm1d(cfg.vit_dim, affine=False), self.image_projection_head)
    alta.ALTA.__init__ = init


def arm(arm_name: str, profile: str, seed: int, head_init: str) -> dict:
    "Train (or read from this bench's cache) one arm at one seed and score it; runs in its own process."
    if arm_name == 'batchnorm': patch_batchnorm_head()
    from alta_nb.core import get_config
    from alta_nb.stages import pretrained
    from alta_nb.evaluate import eval_suite_for, evaluate
    from alta_nb.ablations import validation_mrr
    cfg = get_config(profile, seed=seed, head_init=head_init, epoch_weights=False)
    t = time.perf_counter(); m = pretrained(cfg, 'alta'); secs = time.perf_counter() - t
    r = evaluate(m, eval_suite_for(cfg, verbose=False), cfg)
    r['val_mrr'] = validation_mrr(m, cfg)
    return dict(arm=arm_name, seed=seed, head_init=head_init, train_s=round(secs, 1), **{k: round(float(r[k]), 4) for k in KEYS if k in r})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--profile', default='smoke'); ap.add_argument('--seeds', default='0')
    ap.add_argument('--head-init', default='default', help="the control's head init (the batchnorm arm uses the same)")
    ap.add_argument('--runs', default='_runs/bench_head_norm', help='this bench cache folder: <runs>/<arm> is the ALTA_RUNS of an arm')
    ap.add_argument('--share', default='', help="a finished run's data folder whose MRM/stand-in models to link")
    ap.add_argument('--arm', default='', help=argparse.SUPPRESS); ap.add_argument('--seed', type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.arm:                                   # child process: one arm, one seed, one JSON line
        print('RESULT ' + json.dumps(arm(a.arm, a.profile, a.seed, a.head_init)), flush=True); return
    import subprocess
    runs = Path(a.runs).resolve()
    if a.share and not (Path(a.share)/'models').is_dir():
        sys.exit(f"--share {a.share}: expected a run's data folder with a models/ folder (e.g. _runs/data)")
    rows = []
    for s in [int(x) for x in a.seeds.split(',')]:
        for name in ('control', 'batchnorm'):
            if a.share: link_pretraining(Path(a.share), runs/name, ('mrm-', 'text_rsm-') + (('alta-',) if name == 'control' else ()))
            if name != 'control' and (runs/'control'/'data'/'models').is_dir(): link_pretraining(runs/'control'/'data', runs/name)
            env = dict(os.environ, ALTA_RUNS=str(runs/name), HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
            p = subprocess.run([sys.executable, __file__, '--arm', name, '--seed', str(s), '--profile', a.profile,
                                '--head-init', a.head_init], env=env, capture_output=True, text=True)
            line = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
            if p.returncode or not line: sys.exit(f'arm {name} seed {s} failed:\n{p.stderr[-3000:]}')
            rows.append(json.loads(line[0][7:])); print(json.dumps(rows[-1]), flush=True)
    import pandas as pd
    df = pd.DataFrame(rows).set_index(['seed', 'arm'])[KEYS]
    diff = df.xs('batchnorm', level='arm') - df.xs('control', level='arm')
    print(f'\nprofile {a.profile}, head_init {a.head_init}; per seed and arm:\n{df.round(4).to_string()}')
    print(f'\nbatchnorm − control, per seed:\n{diff.round(4).to_string()}')


if __name__ == '__main__':
    main()
