"The README's status block is generated from the committed run files, never typed (97_status)."
import json
from pathlib import Path
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.mark.parametrize('profile', ['teach'])
def test_readme_status_block_is_the_committed_runs(profile):
    from alta_nb.status import readme_block, status_markdown
    block = readme_block(ROOT/'README.md', profile)
    assert block is not None, f"README.md has no {profile} status block (see 97_status)"
    assert block == status_markdown(ROOT/'figures'/profile, profile), \
        f"README's {profile} status block differs from figures/{profile}/: run `alta-nb status --profile {profile}`"

def test_a_typed_number_in_the_block_is_caught(tmp_path):
    from alta_nb.status import readme_block, status_markdown, update_readme, BEGIN, END
    fig = tmp_path/'fig'; fig.mkdir()
    (fig/'metrics.json').write_text(json.dumps({'05_mrm': {'mae_masked_mse_over_mean': 0.8}, '18_ablations': {'abl_seeds': 2}}))
    (fig/'timings.json').write_text(json.dumps({'total': 3000.0}))
    pd.DataFrame([dict(model=m, seed=s, metric='rsna_auroc', value=v + s / 100) for s in range(2)
                  for m, v in (('alta_multiview', 0.7), ('random_init', 0.4))]).to_csv(fig/'18_ablations-ablation_bars.csv', index=False)
    r = tmp_path/'README.md'
    r.write_text('# x\n' + BEGIN.format(profile='teach') + '\n' + END.format(profile='teach') + '\n')
    block = status_markdown(fig, 'teach')
    assert '| rsna_auroc | alta_multiview | random_init | 0.300 |' in block and '| 0.800 | ≤ 0.5 | no |' in block
    update_readme(r, block)
    assert readme_block(r) == block
    r.write_text(r.read_text().replace('0.300', '0.310'))          # a hand-edited number
    assert readme_block(r) != status_markdown(fig, 'teach')
