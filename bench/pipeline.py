"""The whole input pipeline against the step: studies/s from files on disk (JPG or DICOM; first epoch = decode → resize →
cache write → augment → collate → device, cached epoch = cache read → augment → collate → device) through the kit's
DataLoader alone, and the ALTA training step alone, at smoke and paper sizes; the slower of the two bounds training.

    python bench/pipeline.py                                  # smoke + paper sizes, JPG + DICOM, workers 0 and 2
    python bench/pipeline.py --profiles paper --workers 0,4 --gpu-tflops 989 --mfu 0.4 --gpu-workers 10

The step is measured on this machine's CPU (batch `--step-batch`). For a GPU node without one at hand, `--gpu-tflops`
turns the step's FLOPs (FlopCounterMode) into an estimated GPU step rate at `--mfu`, and the loader's measured
one-process rate times `--gpu-workers` into the loader rate those workers reach if each has its own core.
Data (SynthCXR at the profile's size) goes to the kit's data folder ($ALTA_DATA / $ALTA_RUNS); every first epoch
starts from an empty image cache in a temporary folder.
"""
import argparse, os, shutil, statistics, sys, tempfile, time
import alta_nb                                       # noqa: F401  the kit's CPU thread settings first (#17)
import torch
from torch.utils.data import DataLoader
from alta_nb.core import get_config, parse_overrides, seed_everything
from alta_nb.synthcxr import ensure_synthcxr
from alta_nb.data import StudyDataset, collate_studies, get_tokenizer, read_alta_table, _worker_init
from alta_nb.learner import to_device
from alta_nb.compute import fake_batch, StepBench, step_flops
from alta_nb.alta import build_model


def loader_rates(cfg, fmt: str, workers: int, device, max_studies: int, batch: int) -> dict:
    "Studies/s of a first epoch (empty cache) and of a cached epoch through a DataLoader with `workers` processes."
    root = ensure_synthcxr(cfg, fmt)
    table = read_alta_table(root/'alta_train.csv')
    table = table[table.split == 'train'].reset_index(drop=True) if 'split' in table else table
    table = table.iloc[:max_studies].reset_index(drop=True)
    tok = get_tokenizer(cfg)
    cache_dir = tempfile.mkdtemp(prefix='alta-pipeline-cache-')
    try:
        ds = StudyDataset(table, root, cfg, tok, train=True, cache_dir=cache_dir)
        dl = DataLoader(ds, batch_size=min(batch, len(ds)), shuffle=True, num_workers=workers,
                        collate_fn=collate_studies, pin_memory=torch.device(device).type == 'cuda',
                        persistent_workers=workers > 0, worker_init_fn=_worker_init if workers else None,
                        generator=torch.Generator().manual_seed(cfg.seed))
        def epoch():
            n, t0 = 0, time.perf_counter()
            for b in dl: to_device(b, device); n += len(b['input_ids'])
            if torch.device(device).type == 'cuda': torch.cuda.synchronize()
            return n / (time.perf_counter() - t0)
        first = epoch(); cached = statistics.median(epoch() for _ in range(2))
        del dl
        return dict(studies=len(ds), first_epoch=first, cached=cached)
    finally: shutil.rmtree(cache_dir, ignore_errors=True)


def step_rate(cfg, batch: int, steps: int, device) -> dict:
    "Studies/s of the ALTA training step alone (fixed batch, median of `steps` after one warm-up)."
    seed_everything(cfg.seed)
    b = StepBench(build_model(cfg, kind='alta', device='cpu'), fake_batch(cfg, batch), device)
    b.step()
    dt = statistics.median(b.step() for _ in range(steps))
    return dict(step_s=dt, step_studies_s=batch / dt)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--profiles', default='smoke,paper')
    p.add_argument('--formats', default='jpg,dcm', help='jpg, png and/or dcm')
    p.add_argument('--workers', default='0,2', help='DataLoader worker counts to measure')
    p.add_argument('--max-studies', type=int, default=32, help='studies per loader epoch (the first ones of the train split)')
    p.add_argument('--loader-batch', type=int, default=8, help='studies per loader batch (several batches per epoch, so workers share it)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--step-batch', default='smoke=8,paper=1', help='studies per timed step, per profile')
    p.add_argument('--steps', type=int, default=2)
    p.add_argument('--gpu-tflops', type=float, default=989.0, help='GPU peak bf16 TFLOP/s for the estimate (H100 SXM: 989); 0 = no estimate')
    p.add_argument('--mfu', type=float, default=0.14, help='MFU assumed for the GPU estimate (README: H200 measured 14%% at 96 studies/GPU bf16, 8%% at 24 fp32)')
    p.add_argument('--gpu-workers', type=int, default=10, help="DataLoader workers per GPU for the estimate (the official run.sh: 10)")
    p.add_argument('overrides', nargs='*', help='config overrides name=value (all profiles)')
    a = p.parse_args(argv)
    step_batch = dict(kv.split('=') for kv in a.step_batch.split(','))
    workers = [int(w) for w in a.workers.split(',')]
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, device {a.device}", flush=True)
    rows, n_threads = [], torch.get_num_threads()
    for prof in a.profiles.split(','):
        cfg = get_config(prof, **parse_overrides(a.overrides))
        torch.set_num_threads(cfg.threads or n_threads)          # smoke pins 1 thread; the others use torch's default
        st = step_rate(cfg, int(step_batch.get(prof, 2)), a.steps, a.device)
        print(f"[{prof}] step alone: {st['step_studies_s']:.2f} studies/s ({st['step_s']:.3f} s per step of "
              f"{step_batch.get(prof, 2)}, {torch.get_num_threads()} threads)", flush=True)
        for fmt in a.formats.split(','):
            for w in workers:
                lr = loader_rates(cfg, fmt, w, a.device, a.max_studies, a.loader_batch)
                rows.append(dict(profile=prof, fmt=fmt, workers=w, **lr, **st))
                bound = 'loader' if lr['cached'] < st['step_studies_s'] else 'step'
                print(f"[{prof}] {fmt} workers={w}: loader first epoch {lr['first_epoch']:.1f}, cached {lr['cached']:.1f} "
                      f"studies/s over {lr['studies']} studies; step {st['step_studies_s']:.2f} studies/s -> "
                      f"bound by the {bound} (cached)", flush=True)
        if a.gpu_tflops and prof == 'paper':
            fl = step_flops(cfg, 'alta', 2)
            per = fl['flops_per_sample']
            gpu = a.gpu_tflops * 1e12 * a.mfu / per
            one = [r for r in rows if r['profile'] == prof and r['workers'] == 0]
            for r in one:
                print(f"[{prof}] estimate, GPU node: step {gpu:.0f} studies/s/GPU ({per / 1e9:.0f} GFLOP/study at "
                      f"{a.mfu:.0%} of {a.gpu_tflops:g} TFLOP/s) vs {a.gpu_workers} {r['fmt']} workers x "
                      f"{r['cached']:.1f} (cached) / {r['first_epoch']:.1f} (first epoch) studies/s = "
                      f"{a.gpu_workers * r['cached']:.0f} / {a.gpu_workers * r['first_epoch']:.0f} studies/s -> "
                      f"{'loader' if a.gpu_workers * r['cached'] < gpu else 'step'}-bound cached, "
                      f"{'loader' if a.gpu_workers * r['first_epoch'] < gpu else 'step'}-bound first epoch; the loader "
                      f"bounds (cached) above {a.gpu_workers * r['cached'] * per / (a.gpu_tflops * 1e12):.0%} MFU", flush=True)
    print('\nratios (loader cached studies/s over step studies/s; > 1 = the step bounds):')
    for r in rows:
        print(f"  {r['profile']:6} {r['fmt']:4} workers={r['workers']}: {r['cached'] / r['step_studies_s']:.2f} "
              f"(first epoch {r['first_epoch'] / r['step_studies_s']:.2f})")


if __name__ == '__main__': main()
