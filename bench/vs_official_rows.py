"""The rows of `bench/vs_official.py`: what the kit's side and the official side produced, side by side, and the verdict
of each row (`match`, or `DIFFERS` with the gap). Each row is guarded by a mutation in `vs_official_mutations.py`."""
from __future__ import annotations
import torch

TOL_FWD, TOL_STEP = 4e-6, 1e-7          # tensors and losses: within TOL_FWD·max(1, max |x|); optimizer steps: TOL_STEP

def maxdiff(a, b) -> float:
    if a.shape != b.shape: return float('inf')
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0

def close(a, b, rel=1e-9) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= rel * max(abs(y), 1e-30) for x, y in zip(a, b))

def compare(kit: dict, kinfo: dict, off: dict, oinfo: dict) -> list[tuple]:
    "Rows (what, kit, official, verdict)."
    rows = []
    def row(what, k, o, ok, gap=None):
        rows.append((what, k, o, 'match' if ok else f'DIFFERS{"" if gap is None else f" (gap {gap:.3g})"}'))
    for k, what in (('n_params', 'parameters'), ('n_trainable', 'trainable parameters')):
        row(what, f"{kinfo[k]:,}", f"{oinfo[k]:,}", kinfo[k] == oinfo[k])
    kt, ot = set(kinfo['trainable']), set(oinfo['trainable'])
    row('trainable tensors (same names)', f"{len(kt)} ({len(kt - ot)} not official)",
        f"{len(ot)} ({len(ot - kt)} not kit)", kt == ot)
    row('weights kit → official', 'saved', f"{len(oinfo['missing'])} missing / {len(oinfo['unexpected'])} unexpected",
        not oinfo['missing'] and not oinfo['unexpected'])
    kd, od = set(kinfo['decay']), set(oinfo['decay'])
    row('D2 weight-decay group', f"{len(kd)} tensors (the Learner's AdamW)",
        f"{len(od)} tensors (main_pretrain: timm groups)", kd == od, len(kd ^ od))
    for k in ('pos_embed', 'decoder_pos_embed'):
        d = maxdiff(kinfo['pos'][f'init.{k}'], off[f'init.{k}'])
        row(f'D4 sin-cos {k}', f"pos_embed_rule={kinfo['cfg'].pos_embed_rule}", 'util/pos_embed.py', d <= TOL_FWD, d)
    ours, theirs = kinfo['lr_curve'], oinfo['lr_curve']
    row('D5 lr schedule (epochs 0, .5, 5, 10, 55)', 'ScheduleCB: ' + ' '.join(f'{x:.3g}' for x in ours),
        'lr_sched, run.sh: ' + ' '.join(f'{x:.3g}' for x in theirs), close(ours, theirs),
        max(abs(a - b) for a, b in zip(ours, theirs)))
    for k, what, how in (('small', 'frontal_small (clip=False)', 'frontal_small'),
                         ('study', 'StudyDataset, paper profile', f"StudyDataset (clip={kinfo['study_clip']})")):
        d, mx = maxdiff(kit[f'frontal.{k}'], off[f'frontal.{k}']), off[f'frontal.{k}'].abs().max().item()
        row(f'frontal 448 → 224: {what}', how, 'eval transform + resize in forward', d <= TOL_FWD * max(1.0, mx), d)
    amp = lambda a: f"{a[0]} autocast {a[1].replace('torch.', '')}{' + GradScaler' if a[2] else ''}"
    row('D3 mixed precision (on CUDA)', 'MixedPrecisionCB: ' + amp(kinfo['amp']),
        'train_one_epoch: ' + amp(oinfo['amp']), kinfo['amp'] == oinfo['amp'])
    B = 2
    for b in (0, 1):
        tag = 'all views' if b == 0 else 'absent laterals/priors'
        pairs = [('per-view CLS', 'cls', 0), ('patch tokens', 'patches', 0), ('image embedding', 'img_proj', 0),
                 ('text embedding', 'txt_proj', 0), ('MLM logits', 'logits', -B), ('MAE predictions', 'pred', 0)]
        for what, k, start in pairs:
            o = off[f'b{b}.{k}'][start:]                                 # MLM: the masked half (official keeps only it)
            d, mx = maxdiff(kit[f'b{b}.{k}'], o), o.abs().max().item()
            row(f'batch {b} ({tag}): {what}', f'{tuple(kit[f"b{b}.{k}"].shape)}', f'max |Δ| {d:.2g} (max |x| {mx:.2g})',
                d <= TOL_FWD * max(1.0, mx), d)
        for k in ('global_loss', 'local_loss', 'mae_loss', 'mlm_loss'):
            a, o = kit[f'b{b}.{k}'].item(), off[f'b{b}.{k}'].item()
            row(f'batch {b}: {k}', f'{a:.6f}', f'{o:.6f}', abs(a - o) <= TOL_FWD * max(1.0, abs(o)), abs(a - o))
    same = [bool(torch.equal(kit[f'mlm.{k}'][i], off[f'mlm.{k}'][i].to(kit[f'mlm.{k}'].dtype)))
            for k in ('masked', 'labels') for i in range(len(kit['mlm.masked']))]
    row(f"MLM masking rule ({len(kit['mlm.masked']):,} reports, same draws)", f"mlm_prob={kinfo['cfg'].mlm_prob}",
        'pretrain_datasets._random_mask', all(same), sum(not x for x in same))
    keys = lambda d, p: {k[len(p):] for k in d if k.startswith(p)}
    gk = keys(off, 'grad.')
    rel = max(maxdiff(kit['grad.' + k], off['grad.' + k]) / max(off['grad.' + k].abs().max().item(), 1e-30)
              for k in gk) if gk and gk == keys(kit, 'grad.') else float('inf')
    row('gradients, every trainable tensor (max |Δ| / max |g|)', f'{len(gk)} tensors', f'{rel:.2g}', rel <= 1e-4, rel)
    # Adam's first step is lr·g/(|g|+eps): where fp32 rounding makes the two gradients differ by Δg, the steps may
    # differ by up to lr·min(2, 2|Δg|/(|g|+eps)) (a sign flip when g is noise). Every element: within that bound + 1e-7.
    sk, lr1, n_over, n_noise = keys(off, 'step1.'), oinfo['opt']['lr'][0], 0, 0
    d = max(maxdiff(kit['step1.' + k], off['step1.' + k]) for k in sk) \
        if sk and sk == keys(kit, 'step1.') else float('inf')
    for k in (sk if d < float('inf') and gk == keys(kit, 'grad.') else []):
        g = off['grad.' + k] if 'grad.' + k in off else torch.zeros_like(off['step1.' + k])
        dg = (kit['grad.' + k] - g).abs() if 'grad.' + k in kit else torch.zeros_like(g)
        bound = lr1 * torch.clamp(2 * dg / (g.abs() + 1e-8), max=2.0) + TOL_STEP
        diff = (kit['step1.' + k] - off['step1.' + k]).abs()
        n_over += int((diff > bound).sum()); n_noise += int(((diff > TOL_STEP) & (diff <= bound)).sum())
    row("D1+D2 step 1 from each side's own gradients + clamp", f'{len(sk)} tensors',
        f'max |Δ| {d:.2g}; ' + (f'{n_noise} elem > 1e-7, all from Δg' if n_over == 0 else f'{n_over} elem beyond Δg'),
        d < float('inf') and n_over == 0, d)
    s2 = keys(off, 'step2_kitgrad.')
    d = max(maxdiff(kit['step2.' + k], off['step2_kitgrad.' + k]) for k in s2) \
        if s2 and s2 == keys(kit, 'step2.') else float('inf')
    ko, oo = kinfo['opt'], oinfo['opt']
    opt = lambda o: f"lr {'/'.join(f'{x:.4g}' for x in o['lr'])} β {tuple(o['betas'])} wd {o['wd'][-1]:g}; "
    row('D1+D2 two steps from the same (kit) gradients + clamp', opt(ko) + f'{len(s2)} tensors',
        opt(oo) + f'max |Δ| {d:.2g}',
        d <= TOL_STEP and close(ko['lr'], oo['lr']) and ko['betas'] == oo['betas'] and ko['wd'] == oo['wd'], d)
    return rows

def print_table(rows, times):
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"{'':{w[0]}}  {'kit':{w[1]}}  {'official':{w[2]}}  verdict")
    for r in rows: print(f"{r[0]:{w[0]}}  {r[1]:{w[1]}}  {r[2]:{w[2]}}  {r[3]}")
    print(f"\nCPU step time (the loop's 3rd step, warm: forward + backward + AdamW + clamp, batch 1): "
          f"kit {times[0]:.2f} s, official {times[1]:.2f} s, ratio {times[0] / times[1]:.2f}")
    print(f"CPU forward time (batch 1, first call): kit {times[2]:.2f} s, official {times[3]:.2f} s, "
          f"ratio {times[2] / times[3]:.2f}")
