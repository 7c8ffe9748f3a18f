"""Does a teach run repeat on the machine that made it? (issue #31) The thread count and the kit's `AutoThreads`.

  step       the teach MRM's training step (loss and every gradient) at 2 threads, again at 2, and at 1: whether
             the number of threads alone changes the numbers (a sum split another way)
  pretrain   the teach MRM pretrained afresh (give it an `$ALTA_DATA` whose `models/` is empty; the data and the
             image cache may be kept) with every `AutoThreads` decision logged: the windows in which other
             processes took more than 0.3 cores, the thread changes, and the first step whose loss differs from a
             reference run's `metrics.csv` (another pretraining of the same key, e.g. the last teach run's)

    python bench/thread_repeat.py step
    ALTA_DATA=/tmp/d python bench/thread_repeat.py pretrain _runs/data/models/mrm-<key>/run/metrics.csv
"""
import sys
import torch
import pandas as pd
import alta_nb.threads as T
from alta_nb.core import get_config
from alta_nb.alta import build_model
from alta_nb.compute import fake_batch


def step_check():
    c = get_config('teach', seed=0)
    torch.manual_seed(0); m = build_model(c, 'mrm', None, 'cpu'); batch = fake_batch(c, 16)
    runs = []
    for n in (2, 2, 1):
        torch.set_num_threads(n); m.zero_grad(); torch.manual_seed(1)
        loss = m(batch)['loss']; loss.backward()
        runs.append((loss.item(), torch.cat([p.grad.flatten() for p in m.parameters()
                                             if p.grad is not None])))
    for name, (l, gr) in (('2 threads again', runs[1]), ('1 thread', runs[2])):
        print(f'{name}: loss differs by {abs(l - runs[0][0]):.3g}, '
              f'largest gradient difference {(gr - runs[0][1]).abs().max().item():.3g}')


def pretrain_check(ref_csv: str):
    from alta_nb.stages import pretrained, model_dir
    log, stop = [], T.AutoThreads.stop
    def logged(self):
        before = torch.get_num_threads(); n = stop(self)
        log.append((self.others, before, n)); return n
    T.AutoThreads.stop = logged
    c = get_config('teach', seed=0)
    if (model_dir(c.pretraining(), 'mrm')/'model.safetensors').is_file():
        sys.exit(f"{model_dir(c.pretraining(), 'mrm')}: already trained; point $ALTA_DATA elsewhere")
    pretrained(c, 'mrm')
    a = pd.read_csv(model_dir(c.pretraining(), 'mrm')/'run'/'metrics.csv'); b = pd.read_csv(ref_csv)
    d = (a['loss'] - b['loss']).abs(); diff = d[d > 0]
    changes = [(i + 1, round(o, 2), nb, n) for i, (o, nb, n) in enumerate(log) if n != nb]
    print(f'{len(log)} steps; windows with others > 0.3 cores: '
          f'{[(i + 1, round(o, 2)) for i, (o, _, _) in enumerate(log) if o > 0.3]}')
    print(f'thread changes (step, others, from, to): {changes}')
    print('loss identical to the reference at every step' if diff.empty else
          f'first step whose loss differs from the reference: {int(a.step[diff.index[0]])} '
          f'(largest difference {d.max():.3g})')


if __name__ == '__main__':
    if sys.argv[1:2] == ['step']: step_check()
    elif sys.argv[1:2] == ['pretrain'] and len(sys.argv) == 3: pretrain_check(sys.argv[2])
    else: sys.exit(__doc__)
