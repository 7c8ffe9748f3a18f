"""Benchmark one optimizer step of (a) ALTA with adapters, (b) the same model fully fine-tuned, (c) MRM pretraining,
on the same batch: step time, images/s, peak memory (measured on CUDA, estimated on CPU), ratios; on CUDA also bf16
autocast rows and MFU against the GPU's peak.

    python bench/train_step.py --profile smoke --device cpu
    python bench/train_step.py --profile paper --device cuda --batch 24 --peak-tflops 989 [--compile]
"""
import argparse, json, sys
import alta_nb                                       # noqa: F401  the kit's CPU thread settings before torch loads OpenMP (#17)
import torch
from alta_nb.core import get_config, parse_overrides
from alta_nb.compute import run_benchmark, benchmark_ratios

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--profile', default='smoke', choices=['smoke', 'teach', 'paper'])
    p.add_argument('--device', default='cpu')
    p.add_argument('--batch', type=int, default=4, help='studies per step (paper: 24 per GPU)')
    p.add_argument('--steps', type=int, default=3); p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--kinds', default='alta,alta_full,mrm')
    p.add_argument('--peak-tflops', type=float, default=989.0, help='GPU peak dense bf16 TFLOP/s for MFU (H100 SXM: 989, A100: 312)')
    p.add_argument('--compile', action='store_true', help='torch.compile the models')
    p.add_argument('--threads', type=int, default=0, help='CPU threads (0 = torch default)')
    p.add_argument('--json', default='', help='also write the table and ratios here')
    p.add_argument('overrides', nargs='*', help='config overrides name=value')
    a = p.parse_args(argv)
    if a.device.startswith('cuda'):
        if not torch.cuda.is_available(): sys.exit('--device cuda: no CUDA device is visible to torch')
        torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    cfg = get_config(a.profile, **parse_overrides(a.overrides))
    df = run_benchmark(cfg, a.kinds.split(','), a.batch, a.device, a.steps, a.warmup, a.peak_tflops, a.compile, threads=a.threads)
    import pandas as pd
    with pd.option_context('display.width', 200, 'display.max_columns', 20):
        print(df.drop(columns=['total'], errors='ignore').to_string(index=False, float_format=lambda v: f'{v:.4g}'))
    ratios = benchmark_ratios(df)
    for k, v in ratios.items(): print(f'{k}: {v:.3f}')
    if 'step_time_ratio_adapter_over_full' in ratios:
        r = ratios['step_time_ratio_adapter_over_full']
        print(f"target ALTA step <= 0.6x full fine-tune: {'met' if r <= 0.6 else 'NOT met'} ({r:.2f}x)")
    if a.json:
        with open(a.json, 'w') as f: json.dump(dict(rows=df.to_dict('records'), ratios=ratios, device=a.device, profile=a.profile), f, indent=1)

if __name__ == '__main__': main()
