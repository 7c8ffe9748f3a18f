"""CPU step time alone and beside a competing busy process: the kit against plain-torch processes, as ratios in one run.

Each variant runs in its own fresh process (OpenMP reads its settings once, when torch loads it) and times the same
ALTA training step (same model, same batch, same FLOPs) with the machine otherwise as it is ("alone") and beside
`--busy` busy Python loops that the bench starts and stops itself ("busy"), alone and busy phases alternating.
The variants' processes stay up side by side, asleep until asked, and take turns step by step, so a busy moment of
a shared machine hits every variant alike. Medians are reported.

Variants (the model is the kit's in every one, so only the thread settings differ):
  kit            `import alta_nb` first, the kit's policy: libgomp's spinning workers, and `threads.AutoThreads`
                 around each step (as `train.fit` runs it): the next step gets the cores others left free
  torch          `import torch` first, torch's defaults: libgomp's waiting workers spin ~300k pause loops
                 (what every process got before #17's fix, and what a notebook kernel started without the setting gets)
  torch_passive  `import torch` first with OMP_WAIT_POLICY=PASSIVE in the environment: plain torch, sleeping workers
  torch_1t       `import torch` first with OMP_NUM_THREADS=1: the official run.sh's setting
  torch_spin<N>  `import torch` first with GOMP_SPINCOUNT=N: workers spin N pause loops, then sleep

A phase's first `--settle` steps per variant (default 3, `AutoThreads`' patience) are not timed: the kit changes its
thread count only when three windows in a row ask for it (a blip of another process must not change the numbers of a
run), so it answers a load that lasts, and the medians are those of the steady state, for every variant alike.

    python bench/cpu_load.py                       # teach-size step, batch 4, ~5 min on 2 cores
    python bench/cpu_load.py --rounds 10 --busy 2 --variants kit,torch_passive
"""
import argparse, glob, json, os, statistics, subprocess, sys, time

VARIANTS = dict(kit={}, torch={}, torch_passive=dict(OMP_WAIT_POLICY='PASSIVE'), torch_1t=dict(OMP_NUM_THREADS='1'))
SPIN = 'torch_spin'      # torch_spin<N>: plain torch with GOMP_SPINCOUNT=N (libgomp spins N pause loops, then sleeps)


def variant_env(v: str) -> dict | None:
    "The environment a variant adds: VARIANTS' entry, GOMP_SPINCOUNT for torch_spin<N>, None if unknown."
    if v.startswith(SPIN) and v[len(SPIN):].isdigit(): return dict(GOMP_SPINCOUNT=v[len(SPIN):])
    return VARIANTS.get(v)
BUSY = 'import time\nt = time.time() + {s}\nwhile time.time() < t: pass'   # bounded even if the bench is killed


def _voluntary() -> int:
    "Voluntary context switches of every thread of this process (a sleeping OpenMP worker adds one per wait)."
    n = 0
    for f in glob.glob('/proc/self/task/*/status'):
        try: n += sum(int(l.split()[1]) for l in open(f) if l.startswith('voluntary_ctxt_switches'))
        except (FileNotFoundError, ProcessLookupError): pass
    return n


def child(a):
    "One variant in this fresh process: build the step, then time the phases the parent asks for on stdin."
    if a.child == 'kit': import alta_nb          # noqa: F401  the kit's settings, before torch loads OpenMP
    import torch                                  # torch_*: torch first, as a plain-torch process
    policy = os.environ.get('OMP_WAIT_POLICY', '(unset)')   # what libgomp read when torch loaded it
    if os.environ.get('GOMP_SPINCOUNT'): policy += f" spin {os.environ['GOMP_SPINCOUNT']}"
    from alta_nb.core import get_config, seed_everything
    from alta_nb.compute import fake_batch, StepBench
    from alta_nb.alta import build_model
    cfg = get_config(a.profile)
    seed_everything(cfg.seed)
    bench = StepBench(build_model(cfg, kind='alta', device='cpu'), fake_batch(cfg, a.batch), 'cpu')
    x = torch.randn(16, 64, 128); y = torch.randn_like(x)  # 131k elements: above torch's grain, so run by all threads
    def add_ms(n=100):
        t0 = time.perf_counter()
        for _ in range(n): torch.add(x, y)
        return (time.perf_counter() - t0) / n * 1e3
    bench.step(); add_ms(20)                      # warm-up
    print(json.dumps(dict(threads=torch.get_num_threads(), wait_policy=policy)), flush=True)
    from alta_nb.threads import AutoThreads       # the kit's policy, as train.fit runs it around each step
    auto = AutoThreads() if a.child == 'kit' else None
    def step():
        if auto: auto.start()
        t = bench.step()
        if auto: auto.stop()
        return t
    for line in sys.stdin:                        # "<settle> <steps>": untimed steps, then timed ones; sleeps between
        settle, n = map(int, line.split())
        for _ in range(settle): step()
        add = add_ms(); times, vol = [], []
        for _ in range(n):
            v0 = _voluntary(); times.append(step()); vol.append(_voluntary() - v0)
        print(json.dumps(dict(step=times, add_ms=add, vol=vol)), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--profile', default='teach', choices=['smoke', 'teach', 'paper'])
    p.add_argument('--batch', type=int, default=4, help='studies per step')
    p.add_argument('--steps', type=int, default=2, help='timed steps per variant per phase')
    p.add_argument('--settle', type=int, default=3, help="untimed steps first (AutoThreads' patience)")
    p.add_argument('--rounds', type=int, default=5, help='alone/busy phase pairs')
    p.add_argument('--busy', type=int, default=1, help='competing busy processes in a busy phase')
    p.add_argument('--variants', default='kit,torch,torch_passive,torch_1t')
    p.add_argument('--json', default='', help='also write the raw times and the ratios here')
    p.add_argument('--child', default='', help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child: return child(a)
    variants = a.variants.split(',')
    bad = [v for v in variants if variant_env(v) is None]
    if bad: sys.exit(f'--variants: unknown {bad}; choose from {list(VARIANTS)} or {SPIN}<N>')
    # the variants' settings exactly: none inherited from this shell
    base = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'OMP_NUM_THREADS', 'GOMP_SPINCOUNT')}
    t0 = time.perf_counter()
    kids = {v: subprocess.Popen([sys.executable, __file__, '--child', v, f'--profile={a.profile}', f'--batch={a.batch}'],
                                env={**base, **variant_env(v)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for v in variants}
    def ask(v, line):
        kid = kids[v]
        if line is not None: kid.stdin.write(line + '\n'); kid.stdin.flush()
        out = kid.stdout.readline()
        if not out: sys.exit(f'variant {v} failed (exit {kid.wait()}); see its error above')
        return json.loads(out)
    info = {v: ask(v, None) for v in variants}           # each built and warmed up, now asleep on stdin
    runs = {v: dict(alone=[], busy=[], alone_add_ms=[], busy_add_ms=[], alone_vol=[], busy_vol=[]) for v in variants}
    try:
        for r in range(a.rounds):
            for phase in (('alone', 'busy') if r % 2 == 0 else ('busy', 'alone')):
                procs = [subprocess.Popen([sys.executable, '-c', BUSY.format(s=600)]) for _ in range(a.busy if phase == 'busy' else 0)]
                try:
                    if procs: time.sleep(0.3)
                    for v in variants[r % len(variants):] + variants[:r % len(variants)]:   # rotate who goes first
                        res = ask(v, f'{a.settle} {a.steps}')
                        runs[v][phase] += res['step']; runs[v][f'{phase}_vol'] += res['vol']; runs[v][f'{phase}_add_ms'].append(res['add_ms'])
                finally:
                    for q in procs: q.kill(); q.wait()
            print(f'  round {r + 1}/{a.rounds} done ({time.perf_counter() - t0:.0f} s)', flush=True)
    finally:
        for kid in kids.values(): kid.stdin.close(); kid.wait()
    med = lambda v, k: statistics.median(runs[v][k])
    print(f"\n{a.profile} ALTA step, batch {a.batch}, {os.cpu_count()} CPUs, {a.busy} busy process(es); medians "
          f"of {a.rounds * a.steps} steps per cell, variants interleaved step by step ({time.perf_counter() - t0:.0f} s)")
    print(f"{'variant':14} {'threads':>7} {'OMP_WAIT_POLICY':>15} {'alone s':>8} {'busy s':>8} {'busy/alone':>10} "
          f"{'add ms alone':>12} {'add ms busy':>11} {'vol/step busy':>13}")
    table = {}
    for v in variants:
        row = table[v] = dict(alone=med(v, 'alone'), busy=med(v, 'busy'), add_alone=med(v, 'alone_add_ms'),
                              add_busy=med(v, 'busy_add_ms'), vol_busy=med(v, 'busy_vol'))
        print(f"{v:14} {info[v]['threads']:>7} {info[v]['wait_policy']:>15} {row['alone']:8.3f} {row['busy']:8.3f} "
              f"{row['busy'] / row['alone']:10.2f} {row['add_alone']:12.3f} {row['add_busy']:11.3f} {row['vol_busy']:13.0f}")
    ratios = {f'kit_over_{v}_{ph}': table['kit'][ph] / table[v][ph]
              for v in variants if v != 'kit' and 'kit' in table for ph in ('alone', 'busy')}
    for k, val in ratios.items(): print(f'{k}: {val:.2f}')
    others = [v for v in variants if v != 'kit']
    if 'kit' in table and others:                 # #31: against the best plain-torch variant of each phase
        for ph, bar in (('alone', 1.1), ('busy', 1.2)):
            best = min(others, key=lambda v: table[v][ph])
            r = table['kit'][ph] / table[best][ph]
            print(f"target kit step {ph} <= {bar}x the best plain torch ({best}): {'met' if r <= bar else 'NOT met'} ({r:.2f}x)")
    if a.json:
        with open(a.json, 'w') as f: json.dump(dict(args=vars(a), info=info, runs=runs, table=table, ratios=ratios), f, indent=1)


if __name__ == '__main__': main()
