"""Do two runs of the same commit reach the same verdicts? (issue #31: "the same verdicts on another CPU")

    python bench/cpu_verdicts.py figures/teach /path/to/avx2/figures/teach

Each argument is a figures folder that `alta-nb reproduce` filled (its `metrics.json`, `timings.json` and per-seed
CSVs). Prints, side by side, every status target's met / not met (`alta_nb.status.TARGETS`) and every claim row's
"holds beyond the seed spread" (`alta_nb.status.claim_rows`: 18_ablations and 20_beyond), marks each disagreement,
and counts the non-timing metrics whose values differ. Exit status 1 when any verdict differs.
"""
import math, sys
import pandas as pd
from alta_nb.status import read_run, target_rows, claim_rows

def _timing(key: str) -> bool: return key.endswith(('_s', '_min')) or 'seconds' in key or 'minutes' in key


def _flat(metrics: dict) -> dict:
    return {f'{nb}.{k}': v for nb, d in metrics.items() for k, v in d.items()
            if not _timing(k)}


def _differ(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b): return False
    return a != b


def compare(dir_a: str, dir_b: str) -> int:
    (ma, ta), (mb, tb) = read_run(dir_a), read_run(dir_b)
    t = target_rows(ma, ta).merge(target_rows(mb, tb), on=['target', 'metric', 'bound'], suffixes=('_a', '_b'))
    t['agree'] = [a is b or a == b for a, b in zip(t.met_a, t.met_b)]   # None: not measured
    c = claim_rows(dir_a).merge(claim_rows(dir_b), on=['metric', 'a', 'b'], suffixes=('_a', '_b'))
    c['agree'] = c.beyond_spread_a == c.beyond_spread_b
    pd.set_option('display.width', 250); pd.set_option('display.max_colwidth', 60)
    print(f'A = {dir_a}\nB = {dir_b}\n')
    print(t[['metric', 'bound', 'value_a', 'met_a', 'value_b', 'met_b', 'agree']].round(3).to_string(index=False))
    print()
    print(c[['metric', 'a', 'b', 'diff_a', 'beyond_spread_a', 'diff_b', 'beyond_spread_b', 'agree']]
          .round(3).to_string(index=False))
    fa, fb = _flat(ma), _flat(mb)
    shared = sorted(set(fa) & set(fb))
    differ = [k for k in shared if _differ(fa[k], fb[k])]
    print(f'\ntargets: {int(t.agree.sum())} of {len(t)} agree (met: A {int((t.met_a == True).sum())}, '
          f'B {int((t.met_b == True).sum())}); claim rows: {int(c.agree.sum())} of {len(c)} agree '
          f'(holding: A {int(c.beyond_spread_a.sum())}, B {int(c.beyond_spread_b.sum())})')
    print(f'non-timing metrics: {len(differ)} of {len(shared)} differ; the whole run: '
          f'A {ta.get("total", float("nan")) / 60:.1f} min, B {tb.get("total", float("nan")) / 60:.1f} min')
    return 0 if t.agree.all() and c.agree.all() else 1


if __name__ == '__main__':
    if len(sys.argv) != 3: sys.exit(__doc__)
    sys.exit(compare(sys.argv[1], sys.argv[2]))
