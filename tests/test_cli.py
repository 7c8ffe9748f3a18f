"The `alta-nb` command fails loudly on bad input."
import subprocess
from conftest import ROOT, BIN

def _run(*args): return subprocess.run([str(BIN/'alta-nb'), *args], cwd=ROOT, capture_output=True, text=True)

def test_unknown_notebook_number_is_one_line_error():
    p = _run('reproduce', '--only', '77')
    assert p.returncode == 1 and "no notebook numbered ['77']" in p.stderr

def test_unknown_profile_is_refused():
    p = _run('reproduce', '--profile', 'huge')
    assert p.returncode == 2 and 'invalid choice' in p.stderr

def test_paper_dry_run_and_launcher_agree_on_weights(tmp_path, monkeypatch, capsys):
    "Without MRM.pth or without cxrbert_path the dry run fails with one line each; the printed command's launcher says the same."
    import shlex, pytest
    from alta_nb.core import get_config
    from alta_nb.paper import main_paper
    from alta_nb.train import main as train_main, preflight
    from alta_nb.synthcxr import ensure_synthcxr, ensure_chexpert_like, ensure_rsna_like
    monkeypatch.setenv('ALTA_DATA', str(tmp_path/'data'))
    cfg = get_config('smoke')
    roots = ['--mimic-root', str(ensure_synthcxr(cfg)), '--chexpert-root', str(ensure_chexpert_like(cfg)),
             '--rsna-root', str(ensure_rsna_like(cfg)), '--out-dir', str(tmp_path)]
    import torch
    from alta_nb.mrm import official_mrm_state_dict
    mrm = tmp_path/'MRM.pth'; torch.save(official_mrm_state_dict(cfg), mrm)
    cases = {'no MRM.pth': (['--set', f'eval_per_class={cfg.eval_per_class}', 'allow_random_text=true'], ['mrm_checkpoint']),
             'no cxrbert_path': (['--mrm-checkpoint', str(mrm), '--set', f'eval_per_class={cfg.eval_per_class}'], ['cxrbert_path'])}
    for case, (extra, missing) in cases.items():
        code = main_paper(['--dry-run', *roots, *extra])
        out = capsys.readouterr().out
        fails = [l for l in out.splitlines() if '[FAIL]' in l]
        assert code == 1 and len(fails) == 1 and missing[0] in fails[0], (case, fails)
        cmd = out.splitlines()[-1].strip()
        assert cmd.startswith('torchrun ') and (f'mrm_checkpoint={mrm}' in cmd) == (case == 'no cxrbert_path')
        argv = shlex.split(cmd.split(' -m alta_nb.train ', 1)[1])
        problems = preflight(argv)[2]
        assert list(problems) == missing and problems[missing[0]] in fails[0], case
        with pytest.raises(SystemExit, match=missing[0].split('_')[0]): train_main(argv)   # the launcher stops before any work
