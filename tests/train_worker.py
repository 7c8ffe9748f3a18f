"""Child process for tests/test_train.py: a seeded CPU training run (killed and resumed by the test), and a
one-step loss/gradient probe that runs either alone or under `torchrun --nproc_per_node=2` (gloo).

    python tests/train_worker.py fit RUN_DIR [--resume] [--sleep S] [--kind toy|alta]
    python tests/train_worker.py grads OUT_DIR [--kind toy|alta]        # alone, or under torchrun
"""
import argparse, json, os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)          # bitwise reproducibility across processes needs the same reduction order
from torch.utils.data import DataLoader, default_collate
from alta_nb.core import get_config, seed_everything
from alta_nb.learner import ToyStudies, ToyStudyModel, loader_tokenizer, pad_text; from alta_nb.train import fit; from alta_nb.scaling import init_distributed; from alta_nb.weights import save_weights

def setup(kind: str, deterministic_forward: bool = False):
    "(model, dataloader, cfg) for the test runs; `toy` needs nothing else, `alta` uses the real data and model layers."
    if kind == 'toy':
        cfg = get_config('smoke', batch_size=8, accum_steps=2, epochs=2, ckpt_every=2, keep_ckpts=2, lr=3e-3,
                         warmup_epochs=0.5, device='cpu', seed=0)
        seed_everything(0)
        dl = DataLoader(ToyStudies(96, seed=1), batch_size=4, collate_fn=default_collate)
        return ToyStudyModel(keep=1.0 if deterministic_forward else 0.5), dl, cfg
    from alta_nb.alta import build_model
    from alta_nb.data import study_dataloader
    cfg = get_config('smoke', batch_size=4, accum_steps=2, epochs=2, ckpt_every=2, keep_ckpts=2, device='cpu', seed=0,
                     **(dict(mask_ratio=0.0, align_mask_ratio=0.0, mlm_prob=0.0) if deterministic_forward else {}))
    seed_everything(0)
    # the equivalence test needs the same inputs in 1 and 2 processes: no random augmentation / sentence shuffling
    dl = study_dataloader(cfg, split='train', shuffle=False, train=not deterministic_forward)
    tok = loader_tokenizer(dl, cfg)
    model = build_model(cfg, kind=kind, tokenizer=tok, device='cpu')
    if deterministic_forward:          # BERT's dropout draws differ per process: switch it off for the equivalence test
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout): m.p = 0.0
    return model, dl, cfg

def cmd_fit(a):
    model, dl, cfg = setup(a.kind)
    pause = (lambda step, row: time.sleep(a.sleep)) if a.sleep else None
    res = fit(model, dl, cfg, a.dir, resume=a.resume, on_step=pause, progress=False)
    save_weights(model, Path(a.dir)/'final.safetensors')
    (Path(a.dir)/'losses.json').write_text(json.dumps([r['loss'] for r in res['history']]))

def cmd_grads(a):
    "Loss and gradients of one global batch (rank r takes its contiguous slice), then 3 `fit` steps."
    rank, _, world = init_distributed(torch.device('cpu'))
    model, dl, cfg = setup(a.kind, deterministic_forward=True)
    B = cfg.batch_size
    batch = default_collate([dl.dataset[i] for i in range(B)]) if dl.collate_fn is None else dl.collate_fn([dl.dataset[i] for i in range(B)])
    batch = pad_text(batch, cfg.max_text_len)            # ranks gather equal shapes (fit pads the same way under DDP)
    lo, hi = rank * B // world, (rank + 1) * B // world
    local = {k: v[lo:hi] for k, v in batch.items()}
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    model.train()
    seed_everything(0)
    out = net(local)
    out['loss'].backward()
    loss = out['loss'].detach().clone()
    if world > 1: torch.distributed.all_reduce(loss); loss /= world
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    # then the engine itself: 3 optimizer steps with accumulation, DistributedSampler-style sharding
    res = fit(model, dl, cfg.replace(max_steps=3, ckpt_every=0, accum_steps=1), Path(a.dir)/f'fit_w{world}', progress=False)
    if rank == 0:
        out_dir = Path(a.dir); out_dir.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file
        save_file({f'grad.{k}': v.contiguous() for k, v in grads.items()}, str(out_dir/f'grads_w{world}.safetensors'))
        save_weights(model, out_dir/f'weights_w{world}.safetensors')
        (out_dir/f'loss_w{world}.json').write_text(json.dumps(dict(loss=float(loss), fit=[r['loss'] for r in res['history']])))
    if world > 1: torch.distributed.destroy_process_group()

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('cmd', choices=['fit', 'grads']); p.add_argument('dir')
    p.add_argument('--resume', action='store_true'); p.add_argument('--sleep', type=float, default=0.0)
    p.add_argument('--kind', default='toy')
    a = p.parse_args()
    {'fit': cmd_fit, 'grads': cmd_grads}[a.cmd](a)
