"Data layer: SynthCXR, the ALTA study builder, the image pipeline, datasets and readers — on synthetic, broken and real inputs."
import gzip, io, json, multiprocessing as mp, os, shutil, subprocess, sys, tarfile, zipfile
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from conftest import ROOT, BIN, tail

from alta_nb.core import get_config
from alta_nb.synthcxr import write_synthcxr, ensure_synthcxr, ensure_chexpert_like, ensure_rsna_like, write_dicom, CHEXPERT_LABELS
from alta_nb.synth_progression import plan_synthcxr, MIMIC_CHEXPERT_COLUMNS, FINDINGS, lateral_only
from alta_nb.mimic import build_alta_table, read_metadata, extract_sections, report_text, ALTA_COLUMNS, file_sha256
from alta_nb.images import (read_image, read_dicom, preprocess_u8, image_transform, ImageCache, without_dicom_decoders,
                            pydicom_testfile, measure_cache_speedup, MEAN, STD)
from alta_nb.data import (train_tokenizer, get_tokenizer, StudyDataset, collate_studies, study_dataloader, alta_table, study_root,
                          read_alta_table, ImageListDataset)
from alta_nb.readers import read_chexpert_csv, read_rsna, read_nih, read_openi_reports, openi_studies, NIH_LABELS


@pytest.fixture(scope='module', autouse=True)
def data_env(tmp_path_factory):
    "Generated data of these tests goes to a private folder, never the user's `_runs/data`."
    d = tmp_path_factory.mktemp('alta_data'); old = os.environ.get('ALTA_DATA')
    os.environ['ALTA_DATA'] = str(d)
    yield d
    if old is None: os.environ.pop('ALTA_DATA', None)
    else: os.environ['ALTA_DATA'] = old

@pytest.fixture(scope='module')
def cfg(): return get_config('smoke')

@pytest.fixture(scope='module')
def synth(cfg): return ensure_synthcxr(cfg)

def _stem(p): return '-1' if p == '-1' else Path(p).stem

# ---------------------------------------------------------------- SynthCXR + builder

@pytest.mark.parametrize('n,k,seed', [(16, 3, 0), (40, 5, 1)])
def test_builder_reproduces_generator_truth(tmp_path, n, k, seed):
    "The builder, from the files alone, finds exactly the generator's frontal, lateral and prior (all tie-breaks included)."
    plan = plan_synthcxr(n, k, seed=seed, size=48)
    root = write_synthcxr(tmp_path/'r', plan)
    tab = build_alta_table(root, tmp_path/'alta.csv', verbose=False)
    truth = pd.read_csv(root/'synthcxr_truth.csv', dtype=str).astype({'study_id': int})
    t = truth[(truth.frontal != '-1') & (truth.report_kind != 'empty')].set_index('study_id')
    b = tab.set_index('study_id')
    assert sorted(b.index) == sorted(t.index)
    for col, tcol in [('image_path', 'frontal'), ('auxview_image_path', 'lateral'), ('last_image_path', 'prior_frontal'),
                      ('last_auxview_image_path', 'prior_lateral')]:
        assert [_stem(p) for p in b[col]] == list(t.loc[b.index, tcol]), col
    c = tab.attrs['counts']
    assert c['rows'] == len(t) and c['studies'] == n * k
    if n == 40:   # the bigger plan exercises every tie-break the builder documents
        meta = read_metadata(root)
        per = meta.groupby('study_id').ViewPosition.apply(list)
        assert any(sorted(v).count('AP') + sorted(v).count('PA') > 1 for v in per), 'no study with two frontals'
        assert (meta.ViewPosition == 'LL').any() and c['no_frontal'] > 0
        assert meta.groupby(['subject_id', 'StudyDate']).study_id.nunique().max() > 1, 'no same-day studies'
        assert c['empty_reports_dropped'] > 0

def test_synthcxr_is_deterministic_and_fast(tmp_path):
    import time
    a = write_synthcxr(tmp_path/'a', plan_synthcxr(8, 3, seed=3, size=64))
    b = write_synthcxr(tmp_path/'b', plan_synthcxr(8, 3, seed=3, size=64))
    c = write_synthcxr(tmp_path/'c', plan_synthcxr(8, 3, seed=4, size=64))
    files = sorted(p.relative_to(a) for p in a.rglob('*') if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob('*') if p.is_file())
    assert all((a/f).read_bytes() == (b/f).read_bytes() for f in files)
    assert (a/'mimic-cxr-2.0.0-metadata.csv').read_bytes() != (c/'mimic-cxr-2.0.0-metadata.csv').read_bytes()
    t0 = time.perf_counter(); write_synthcxr(tmp_path/'d', plan_synthcxr(16, 3, seed=0, size=96))
    assert time.perf_counter() - t0 < 5, 'the smoke set must build in seconds'

def test_synthcxr_layout_matches_mimic(synth):
    meta = pd.read_csv(synth/'mimic-cxr-2.0.0-metadata.csv')
    assert list(meta.columns) == ['dicom_id', 'subject_id', 'study_id', 'PerformedProcedureStepDescription', 'ViewPosition', 'Rows',
                                  'Columns', 'StudyDate', 'StudyTime', 'ProcedureCodeSequence_CodeMeaning',
                                  'ViewCodeSequence_CodeMeaning', 'PatientOrientationCodeSequence_CodeMeaning']
    assert meta.dicom_id.str.fullmatch(r'([0-9a-f]{8}-){4}[0-9a-f]{8}').all()
    assert meta.subject_id.between(10_000_000, 19_999_999).all() and meta.study_id.between(50_000_000, 59_999_999).all()
    split = pd.read_csv(synth/'mimic-cxr-2.0.0-split.csv')
    assert list(split.columns) == ['dicom_id', 'study_id', 'subject_id', 'split'] and set(split.split) <= {'train', 'validate', 'test'}
    assert split.groupby('subject_id').split.nunique().max() == 1          # split by subject
    lab = pd.read_csv(synth/'mimic-cxr-2.0.0-chexpert.csv')
    assert list(lab.columns) == ['subject_id', 'study_id'] + MIMIC_CHEXPERT_COLUMNS
    v = lab[MIMIC_CHEXPERT_COLUMNS].values.ravel(); assert set(v[~np.isnan(v)]) <= {1.0, 0.0, -1.0} and np.isnan(v).any()
    for r in meta.itertuples():
        s = str(r.subject_id)
        assert (synth/f'files/p{s[:2]}/p{s}/s{r.study_id}/{r.dicom_id}.jpg').exists()
        im = Image.open(synth/f'files/p{s[:2]}/p{s}/s{r.study_id}/{r.dicom_id}.jpg')
        assert im.size == (r.Columns, r.Rows) and im.mode == 'L'
    rep = next(synth.glob('files/p*/p*/s*.txt')).read_text()
    assert 'FINAL REPORT' in rep and 'IMPRESSION:' in rep

def test_lateral_only_findings_and_temporal_reports(synth):
    truth = pd.read_csv(synth/'synthcxr_truth.csv')
    assert (truth.lateral_only_findings.fillna('') != '').sum() >= 5
    tab = pd.read_csv(synth/'alta_train.csv')
    text = ' '.join(tab.report).lower()
    for w in ('new', 'increase', 'improved', 'unchanged', 'no pneumothorax', 'possible', 'lateral view'):
        assert w in text, w
    # the ALTA table's priors say "compared" things only when a prior exists
    first = tab[tab.last_image_path == '-1'].report.str.lower()
    assert not first.str.contains('unchanged|interval increase|new ').any()

def test_ensure_synthcxr_is_atomic_under_concurrency(cfg, data_env):
    c2 = cfg.replace(n_subjects=6, studies_per_subject=2, seed=11)
    ctx = mp.get_context('fork')
    with ctx.Pool(2) as pool: roots = pool.map(ensure_synthcxr, [c2, c2])
    assert roots[0] == roots[1] and (roots[0]/'alta_train.csv').exists()
    leftovers = [p.name for p in roots[0].parent.iterdir() if p.name.startswith('.')]
    assert leftovers == [], leftovers

def test_chexpert_and_rsna_like(cfg):
    chex = ensure_chexpert_like(cfg)
    tr = read_chexpert_csv(chex/'train.csv', check_images=True); va = read_chexpert_csv(chex/'valid.csv', check_images=True)
    assert chex.name == 'CheXpert-v1.0-small' and tr.Path.str.match(r'CheXpert-v1.0-small/train/patient\d+/study\d+/view\d_(frontal|lateral)\.jpg').all()
    fr = tr[tr['Frontal/Lateral'] == 'Frontal']
    labels = [c for c in tr.columns if c not in ('Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA', 'Report Impression')]
    lab = fr[labels].fillna(0)                       # GLoRIA's rule, transcribed: the class 1, every other label but No Finding 0
    for c in ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion']:
        ok = (lab[c] == 1) & (lab.drop(columns=[c, 'No Finding']) == 0).all(axis=1)
        assert ok.sum() >= cfg.eval_per_class, c
    for c in ['Atelectasis', 'Cardiomegaly', 'Edema', 'Fracture', 'No Finding', 'Pleural Effusion', 'Pneumonia', 'Pneumothorax']:
        ok = (lab[c] == 1) & (lab.drop(columns=[c]) == 0).all(axis=1)       # ConVIRT's 8x200: exclusively positive
        assert ok.sum() >= cfg.eval_per_class, c
    assert va[CHEXPERT_LABELS].notna().all().all()
    rs = read_rsna(ensure_rsna_like(cfg))
    assert 0 < rs.Target.mean() < 1 and all(len(b) > 0 for b in rs[rs.Target == 1].boxes)
    assert read_image(ensure_rsna_like(cfg)/rs.path[0]).shape == (cfg.synth_image_size,) * 2

# ---------------------------------------------------------------- images

def test_dicom_roundtrip_bit_depths_and_polarity(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (30, 1))
    for bits in (8, 12, 16):
        for phot in ('MONOCHROME1', 'MONOCHROME2'):
            x = read_image(write_dicom(tmp_path/f'{bits}{phot}.dcm', ramp, bits, phot))
            assert np.abs(x - ramp).max() <= 1 / 2 ** 7, (bits, phot)

def test_dicom_tree_builds_and_loads(tmp_path, cfg):
    root = write_synthcxr(tmp_path/'dcm', plan_synthcxr(5, 2, seed=2, size=48), fmt='dcm')
    tab = build_alta_table(root, verbose=False)
    assert tab.image_path.str.endswith('.dcm').all()
    import pydicom
    phot = {pydicom.dcmread(p, stop_before_pixels=True).PhotometricInterpretation for p in root.rglob('*.dcm')}
    assert phot == {'MONOCHROME1', 'MONOCHROME2'}
    tok = train_tokenizer(tab.report, 200, 32)
    item = StudyDataset(tab, root, cfg.replace(max_text_len=32), tok, cache_dir=tmp_path/'c')[0]
    assert item['images'].shape == (4, 3, 64, 64)
    # MONOCHROME1 files come out with the same polarity as the JPGs would: lungs darker than the mediastinum
    for p in list(root.rglob('*.dcm'))[:6]:
        x = read_image(p)
        if pydicom.dcmread(p, stop_before_pixels=True).ViewPosition in ('PA', 'AP'):
            h, w = x.shape
            assert x[h // 3: 2 * h // 3, w // 2 - 2: w // 2 + 2].mean() > x[h // 3: h // 2, w // 5: w // 3].mean()

def test_bad_images_fail_with_one_line(tmp_path):
    jpg = tmp_path/'a.jpg'; Image.fromarray(np.full((40, 40), 128, np.uint8)).save(jpg)
    png = tmp_path/'a.png'; Image.fromarray(np.full((40, 40), 128, np.uint8)).save(png)
    dcm = write_dicom(tmp_path/'a.dcm', np.full((40, 40), .5, np.float32))
    cases = {'t.jpg': jpg.read_bytes()[:150], 't.png': png.read_bytes()[:60], 'junk.jpg': b'not an image at all' * 10,
             't.dcm': dcm.read_bytes()[:-700]}
    for name, data in cases.items():
        (tmp_path/name).write_bytes(data)
        with pytest.raises(ValueError) as e: read_image(tmp_path/name)
        msg = str(e.value); assert name in msg and 'corrupt or truncated' in msg and '\n' not in msg, msg
    with pytest.raises(FileNotFoundError, match='missing.png: image file does not exist'): read_image(tmp_path/'missing.png')
    import pydicom
    ds = pydicom.dcmread(dcm); del ds.PixelData; ds.save_as(tmp_path/'nopix.dcm')
    with pytest.raises(ValueError, match='nopix.dcm: DICOM has no pixel data'): read_image(tmp_path/'nopix.dcm')

def test_compressed_dicom_without_decoder_names_syntax_and_package():
    j2k = pydicom_testfile('RG1_J2KR.dcm')
    if not j2k: pytest.skip('pydicom-data is not installed (pip install pydicom-data)')
    with without_dicom_decoders():
        with pytest.raises(ValueError) as e: read_image(j2k)
    msg = str(e.value)
    assert "JPEG 2000 Image Compression (Lossless Only)" in msg and '1.2.840.10008.1.2.4.90' in msg and 'pylibjpeg-openjpeg' in msg

def test_transform_matches_official_sizes_and_normalisation(tmp_path):
    a = np.tile(np.arange(256, dtype=np.uint8), (300, 1))[:, :200]       # portrait 300x200
    p = tmp_path/'g.png'; Image.fromarray(a).save(p)
    u8 = preprocess_u8(p, 64)
    assert u8.shape == (64, 64)
    t = image_transform(64)(p)
    assert t.shape == (3, 64, 64) and torch.allclose(t[0], t[1])
    assert torch.allclose(t[0], (torch.from_numpy(u8).float() / 255 - MEAN) / STD, atol=1e-5)
    torch.manual_seed(0); ta = image_transform(64, train=True)(p)
    assert ta.shape == (3, 64, 64) and not torch.allclose(ta, t)

def test_cache_speedup_and_invalidation(tmp_path, synth):
    tab = pd.read_csv(synth/'alta_train.csv')
    paths = sorted(set(tab.auxview_image_path[tab.auxview_image_path != '-1']) | set(tab.image_path))
    sp = measure_cache_speedup(paths, synth, 64, tmp_path/'c')
    assert sp['speedup'] > 2, sp
    c = ImageCache(paths[:3], synth, 32, tmp_path/'c2'); c.get(0)
    assert ImageCache(paths[:3], synth, 32, tmp_path/'c2').filled == 1
    assert ImageCache(paths[:3], synth, 48, tmp_path/'c2').filled == 0        # another transform: another cache

# ---------------------------------------------------------------- datasets

def test_batch_contract(cfg):
    dl = study_dataloader(cfg, 'train')
    b = next(iter(dl)); B, S, H = cfg.batch_size, cfg.image_size, cfg.hires_size
    assert b['images'].shape == (B, 4, 3, S, S) and b['images'].dtype == torch.float32
    assert b['view_mask'].shape == (B, 4) and b['view_mask'].dtype == torch.bool and b['view_mask'][:, 0].all()
    assert b['hires'].shape == (B, 3, H, H)
    assert b['input_ids'].dtype == torch.long and b['attention_mask'].dtype == torch.long
    assert b['input_ids'].shape == b['attention_mask'].shape and b['input_ids'].shape[1] <= cfg.max_text_len
    assert (b['input_ids'][b['attention_mask'] == 0] == 0).all()                       # padded with [PAD]=0
    assert (b['images'][~b['view_mask']] == 0).all() and (b['images'][b['view_mask']].abs().sum((1, 2, 3)) > 0).all()
    assert all(isinstance(x, str) for k in ('report', 'study_id', 'subject_id') for x in b[k])
    assert not b['view_mask'].all(), 'smoke batches should include studies with missing views'
    # the same seed gives the same batches
    b2 = next(iter(study_dataloader(cfg, 'train')))
    assert b2['study_id'] == b['study_id']

def test_eval_loader_matches_with_workers(cfg):
    ev = cfg.replace(num_workers=2)
    a = next(iter(study_dataloader(cfg, 'train', train=False, shuffle=False)))
    b = next(iter(study_dataloader(ev, 'train', train=False, shuffle=False)))
    assert torch.equal(a['images'], b['images']) and torch.equal(a['input_ids'], b['input_ids'])

def test_tokenizer_contract():
    tok = train_tokenizer(['No pleural effusion.', 'Small left effusion, unchanged.'] * 4, 80, 12)
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    enc = tok('NO effusion. ' * 20, truncation=True, max_length=12)
    assert len(enc['input_ids']) == 12 and enc['input_ids'][0] == 2 and enc['input_ids'][-1] == 3
    assert tok.decode(tok('No Effusion.')['input_ids'], skip_special_tokens=True) == 'no effusion.'

def test_missing_cxrbert_path_is_explained(cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match='cxrbert_path'): get_tokenizer(cfg.replace(cxrbert_path=str(tmp_path)))

def test_image_list_dataset(cfg):
    chex = ensure_chexpert_like(cfg)
    tr = pd.read_csv(chex/'train.csv')
    ds = ImageListDataset(tr.Path[:3], chex.parent, cfg)
    assert ds[1].shape == (3, cfg.image_size, cfg.image_size)
    with pytest.raises(FileNotFoundError, match='nope.jpg: image file does not exist'): ImageListDataset(['nope.jpg'], chex.parent, cfg)

# ---------------------------------------------------------------- bad input: one line naming file/row; nothing half written

@pytest.fixture
def bad_root(tmp_path):
    root = write_synthcxr(tmp_path/'r', plan_synthcxr(6, 3, seed=5, size=32, p_no_frontal=0, p_empty_report=0)); return root

def _meta_edit(root, fn):
    p = root/'mimic-cxr-2.0.0-metadata.csv'; m = pd.read_csv(p, dtype={'dicom_id': str}); m = fn(m); m.to_csv(p, index=False)

def _fails(root, exc, *needles, out=None, **kw):
    with pytest.raises(exc) as e: build_alta_table(root, out, verbose=False, **kw)
    msg = str(e.value)
    assert '\n' not in msg and all(n in msg for n in needles), msg
    if out is not None: assert not Path(out).exists() and not [p for p in Path(out).parent.iterdir() if p.name.startswith('.')]

def test_bad_metadata(bad_root, tmp_path):
    out = tmp_path/'o'/'alta.csv'; out.parent.mkdir()
    _meta_edit(bad_root, lambda m: m.rename(columns={'ViewPosition': 'View'}))
    _fails(bad_root, ValueError, 'mimic-cxr-2.0.0-metadata.csv', "missing column(s) ['ViewPosition']", out=out)
    _meta_edit(bad_root, lambda m: m.rename(columns={'View': 'ViewPosition'}).assign(StudyDate=lambda d: d.StudyDate.astype(str).where(d.index != 4, 'May 3')))
    _fails(bad_root, ValueError, "row 6 column 'StudyDate': expected int, got 'May 3'", out=out)
    _meta_edit(bad_root, lambda m: pd.concat([m.assign(StudyDate=21100101), m.iloc[[2]]]))
    _fails(bad_root, ValueError, 'duplicate dicom_id', out=out)

def test_bad_files_reports_and_views(bad_root, tmp_path):
    tab = build_alta_table(bad_root, verbose=False)
    # an image that does not exist
    img = bad_root/tab.auxview_image_path[tab.auxview_image_path != '-1'].iloc[0]; img.rename(img.with_suffix('.bak'))
    _fails(bad_root, FileNotFoundError, img.name, 'does not exist', out=tmp_path/'a.csv')
    img.with_suffix('.bak').rename(img)
    # an empty report / one without FINDINGS and IMPRESSION: dropped and counted, or an error in strict mode
    sid, subj = tab.study_id[0], tab.subject_id[0]
    rp = bad_root/f'files/p{str(subj)[:2]}/p{subj}/s{sid}.txt'
    rp.write_text(' FINAL REPORT\n EXAMINATION: CHEST\n INDICATION: cough\n')
    t2 = build_alta_table(bad_root, verbose=False)
    assert sid not in set(t2.study_id) and t2.attrs['counts']['empty_reports_dropped'] >= 1
    _fails(bad_root, ValueError, rp.name, 'empty report', strict=True)
    rp.unlink()
    _fails(bad_root, FileNotFoundError, rp.name, 'report of study')
    # a study with no frontal image: skipped and counted, or an error in strict mode
    _meta_edit(bad_root, lambda m: m.assign(ViewPosition=m.ViewPosition.where(m.study_id != tab.study_id[1], 'LATERAL')))
    rp.write_text('FINDINGS: ok.\nIMPRESSION: ok.\n')
    t3 = build_alta_table(bad_root, verbose=False)
    assert tab.study_id[1] not in set(t3.study_id) and t3.attrs['counts']['no_frontal'] >= 1
    _fails(bad_root, ValueError, 'no frontal (PA/AP) image', 'mimic-cxr-2.0.0-metadata.csv', strict=True)

def test_bad_alta_table_rows(tmp_path, cfg, synth):
    tab = pd.read_csv(synth/'alta_train.csv', dtype=str)
    for col, val, needle in [('image_path', '-1', 'row 4: study has no frontal image'), ('report', ' ', 'row 4: empty report')]:
        t = tab.copy(); t.loc[2, col] = val; t.to_csv(tmp_path/'t.csv', index=False)
        with pytest.raises(ValueError, match=needle): read_alta_table(tmp_path/'t.csv')
    with pytest.raises(ValueError, match=r"missing column\(s\) \['report'\]"):
        tab.drop(columns='report').to_csv(tmp_path/'t.csv', index=False); read_alta_table(tmp_path/'t.csv')
    t = tab.copy(); t.loc[0, 'image_path'] = 'files/p10/nope.jpg'
    with pytest.raises(FileNotFoundError, match='nope.jpg: image file does not exist'):
        StudyDataset(t, synth, cfg, train_tokenizer(tab.report, 100, 16))

def test_bad_chexpert_and_rsna(tmp_path, cfg):
    chex = ensure_chexpert_like(cfg)
    tr = pd.read_csv(chex/'train.csv')
    t = tr.copy(); t['Edema'] = t['Edema'].astype(object); t.loc[5, 'Edema'] = 'yes'; t.to_csv(tmp_path/'train.csv', index=False)
    with pytest.raises(ValueError, match=r"row 7 column 'Edema': label 'yes' not in \{1, 0, -1, blank\}"): read_chexpert_csv(tmp_path/'train.csv')
    t = tr.copy(); t.loc[1, 'Cardiomegaly'] = 2; t.to_csv(tmp_path/'train.csv', index=False)
    with pytest.raises(ValueError, match="row 3 column 'Cardiomegaly'"): read_chexpert_csv(tmp_path/'train.csv')
    tr.drop(columns='AP/PA').to_csv(tmp_path/'train.csv', index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['AP/PA'\]"): read_chexpert_csv(tmp_path/'train.csv')
    rs = ensure_rsna_like(cfg); d = tmp_path/'rsna'; shutil.copytree(rs, d)
    lab = pd.read_csv(d/'stage_2_train_labels.csv'); lab.loc[0, 'Target'] = 3; lab.to_csv(d/'stage_2_train_labels.csv', index=False)
    with pytest.raises(ValueError, match="row 2 column 'Target': expected 0 or 1"): read_rsna(d)
    lab.loc[0, 'Target'] = 0; lab.to_csv(d/'stage_2_train_labels.csv', index=False)
    (d/'stage_2_train_images'/f'{lab.patientId[1]}.dcm').unlink()
    with pytest.raises(FileNotFoundError, match=f'{lab.patientId[1]}.dcm: DICOM listed'): read_rsna(d)

def test_report_sections():
    assert extract_sections('FINDINGS AND IMPRESSION: Clear lungs.\n') == {'findings': 'Clear lungs.', 'impression': ''}
    assert report_text(' IMPRESSION: \n No acute process.\n') == 'No acute process.'
    assert report_text('') == '' and report_text('WET READ: ___') == ''

# ---------------------------------------------------------------- real data (../shared/realcxr, pydicom-data, the torchxrayvision wheel)

def test_real_nih_pngs_load_and_match_labels(realcxr):
    nih = read_nih(realcxr/'nih_labels.csv', realcxr/'nih256')
    pngs = sorted(p.name for p in (realcxr/'nih256').glob('*.png'))
    assert len(nih) == len(pngs) == 621 and sorted(nih['Image Index']) == pngs
    assert nih['View Position'].value_counts().to_dict() == {'PA': 518, 'AP': 103}
    for r in nih.itertuples():
        x = read_image(r.path)
        assert x.shape == (256, 256) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 and x.std() > 0.02
    labs = nih[NIH_LABELS]
    assert (labs.sum(axis=1) >= 1).all()
    assert all(set(fl.split('|')) == {l for l in NIH_LABELS if row[l]} for fl, (_, row) in zip(nih['Finding Labels'], labs.iterrows()))
    assert ((labs['No Finding'] == 1) == (labs.drop(columns='No Finding').sum(axis=1) == 0)).all()

def test_real_openi_reports_parse(realcxr):
    iu = read_openi_reports(realcxr/'NLMCXR_reports.tgz')
    assert len(iu) == 3955 and iu.uid.is_unique
    assert ((iu.findings != '') | (iu.impression != '')).sum() >= 3900
    assert (iu.findings != '').sum() == 3425 and (iu.impression != '').sum() == 3921
    st = openi_studies(iu, realcxr/'nlmcxr_dicom_metadata.csv.gz')
    c = st.attrs['counts']
    # 2,586 of the 7,469 IU images have no View Position in their DICOM header, so fewer reports get a view than have images
    assert (c['reports'], c['with_frontal'], c['with_lateral'], c['with_both'], c['images_without_metadata']) == (3955, 2561, 818, 782, 3), c

def test_real_cr_dicom_polarity():
    uncr = pydicom_testfile('RG1_UNCR.dcm')
    if not uncr: pytest.skip('pydicom-data is not installed (pip install pydicom-data)')
    import pydicom
    assert pydicom.dcmread(uncr, stop_before_pixels=True).PhotometricInterpretation == 'MONOCHROME1'
    x = read_image(uncr); h, w = x.shape
    centre = x[h // 4: 3 * h // 4, 9 * w // 20: 11 * w // 20].mean()
    lungs = (x[h // 4: 3 * h // 4, w // 5: 2 * w // 5].mean() + x[h // 4: 3 * h // 4, 3 * w // 5: 4 * w // 5].mean()) / 2
    assert centre > lungs + 0.1, (centre, lungs)         # bone/mediastinum bright, lungs dark: MONOCHROME1 was inverted

@pytest.fixture(scope='module')
def txv_wheel():
    "The torchxrayvision 1.5.7 wheel (only its data files are read, in a temp folder; never installed or redistributed)."
    d = ROOT/'.whl'
    found = sorted(d.glob('torchxrayvision-1.5.7*.whl'))
    if not found:
        try: subprocess.run([str(BIN/'pip'), 'download', '--no-deps', 'torchxrayvision==1.5.7', '-d', str(d)], capture_output=True, timeout=120)
        except Exception: pass
        found = sorted(d.glob('torchxrayvision-1.5.7*.whl'))
    if not found: pytest.skip('torchxrayvision 1.5.7 wheel not available (pip download --no-deps torchxrayvision==1.5.7 -d .whl)')
    return found[0]

def test_real_chexpert_and_rsna_label_files(txv_wheel, tmp_path):
    with zipfile.ZipFile(txv_wheel) as z:
        (tmp_path/'train.csv').write_bytes(gzip.decompress(z.read('torchxrayvision/data/chexpert_train.csv.gz')))
        with zipfile.ZipFile(io.BytesIO(z.read('torchxrayvision/data/kaggle_stage_2_train_labels.csv.zip'))) as z2:
            name = next(n for n in z2.namelist() if n.endswith('.csv'))
            (tmp_path/'stage_2_train_labels.csv').write_bytes(z2.read(name))
    cx = read_chexpert_csv(tmp_path/'train.csv')
    assert len(cx) > 200_000 and cx.Path.str.startswith('CheXpert-v1.0-small/train/').all()
    assert cx['Frontal/Lateral'].isin(['Frontal', 'Lateral']).all()
    rs = read_rsna(tmp_path, check_images=False)
    assert len(rs) == 26684 and rs.Target.sum() == 6012

# ---------------------------------------------------------------- issue #15: real collections (each failed before the fix)

def _png16(path, a, sbit=None):
    "A 16-bit greyscale PNG of `a`, with an sBIT chunk stating `sbit` significant bits if given (written by hand: Pillow writes none)."
    import struct, zlib
    buf = io.BytesIO(); Image.fromarray(a.astype(np.uint16)).save(buf, format='PNG'); data = buf.getvalue()
    if sbit is not None:
        chunk = b'sBIT' + bytes([sbit])
        data = data[:33] + struct.pack('>I', 1) + chunk + struct.pack('>I', zlib.crc32(chunk)) + data[33:]   # right after IHDR
    Path(path).write_bytes(data); return Path(path)

def test_issue15_table_cache_follows_the_files(tmp_path, cfg, bad_root):
    "1. The cached table of a data_root is keyed on its content: edited reports or metadata rebuild it; it says where it lives."
    from alta_nb.core import data_dir
    c = cfg.replace(data_root=str(bad_root))
    t1 = alta_table(c, 'all'); _, csv1 = study_root(c)
    assert str(data_dir()/'alta_tables') in str(csv1)
    sid, subj = t1.study_id[0], t1.subject_id[0]
    (bad_root/f'files/p{str(subj)[:2]}/p{subj}/s{sid}.txt').write_text('FINDINGS: a brand new finding xyzzy.\n')
    t2 = alta_table(c, 'all'); _, csv2 = study_root(c)
    assert csv2 != csv1 and t2.set_index('study_id').report[sid] == 'a brand new finding xyzzy.'
    _meta_edit(bad_root, lambda m: m.assign(ViewPosition=m.ViewPosition.where(m.study_id != t1.study_id[1], 'LATERAL')))
    assert len(alta_table(c, 'all')) == len(t1) - 1

def test_issue15_zero_rows_raise_and_headerless_reports_are_used_whole(bad_root, capsys):
    "2. A build that would give 0 rows raises with the counts per reason and examples; reports without any header are used whole."
    tab = build_alta_table(bad_root, verbose=False)
    rps = [bad_root/f'files/p{str(s)[:2]}/p{s}/s{st}.txt' for s, st in zip(tab.subject_id, tab.study_id)]
    for rp in rps: rp.write_text(' WET READ: ___\n NOTIFICATION: called.\n')
    with pytest.raises(ValueError) as e: build_alta_table(bad_root, verbose=False)
    msg = str(e.value)
    assert '\n' not in msg and '0 rows' in msg and f'empty_report={len(rps)}' in msg and rps[0].name in msg, msg
    for rp in rps: rp.write_text('Heart size normal.\n  Lungs clear.\n')
    t = build_alta_table(bad_root, verbose=True)
    assert len(t) == len(tab) and (t.report == 'Heart size normal. Lungs clear.').all()
    assert t.attrs['counts']['reports_without_headers'] == len(tab)
    assert capsys.readouterr().out.count('without section headers') == 1

def test_issue15_unrecognised_views_are_listed_and_mappable(bad_root, capsys):
    "3. View values outside the rule are listed with counts; `view_map` maps them."
    ref = build_alta_table(bad_root, verbose=False)
    _meta_edit(bad_root, lambda m: m.assign(ViewPosition=m.ViewPosition.replace({'AP': 'AP Supine', 'LATERAL': 'L', 'PA': 'AP Supine'})))
    with pytest.raises(ValueError) as e: build_alta_table(bad_root, verbose=False)
    assert "'AP Supine'" in str(e.value) and 'view_map' in str(e.value)
    _meta_edit(bad_root, lambda m: m.assign(ViewPosition=m.ViewPosition.replace({'AP Supine': 'AP'})))
    t = build_alta_table(bad_root, verbose=True)
    c = t.attrs['counts']; out = capsys.readouterr().out
    assert c['unrecognised_views'].get('L', 0) > 0 and "'L'" in out and 'view_map' in out
    t2 = build_alta_table(bad_root, verbose=False, view_map={'L': 'LATERAL'})
    assert (t2.auxview_image_path != '-1').sum() == (ref.auxview_image_path != '-1').sum() and 'L' not in t2.attrs['counts']['unrecognised_views']

def test_issue15_dicom_without_suffix_or_preamble(tmp_path, cfg):
    "4. A DICOM with no .dcm suffix and no 128-byte preamble is read by content by every entry point."
    import pydicom
    a = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (40, 1))
    dcm = write_dicom(tmp_path/'ref.dcm', a, bits=12)
    ds = pydicom.dcmread(dcm)
    ds.preamble = None; del ds.file_meta
    ds.save_as(tmp_path/'IM0001', implicit_vr=True, little_endian=True, enforce_file_format=False)   # old ACR-NEMA style
    assert (tmp_path/'IM0001').read_bytes()[128:132] != b'DICM'
    ref = read_image(dcm)
    np.testing.assert_allclose(read_image(tmp_path/'IM0001'), ref)
    assert np.array_equal(preprocess_u8(tmp_path/'IM0001', 32), preprocess_u8(dcm, 32))
    assert torch.equal(image_transform(32)(tmp_path/'IM0001'), image_transform(32)(dcm))
    assert np.array_equal(ImageCache(['IM0001'], tmp_path, 32, tmp_path/'c').get(0), preprocess_u8(dcm, 32))
    assert ImageListDataset(['IM0001'], tmp_path, cfg, size=32, cache=False)[0].shape == (3, 32, 32)
    (tmp_path/'junk').write_bytes(b'\x00\x01garbage' * 40)
    with pytest.raises(ValueError) as e: read_image(tmp_path/'junk')
    msg = str(e.value); assert 'junk' in msg and 'corrupt or truncated' in msg and 'DICOM' in msg and '\n' not in msg, msg

def test_issue15_16bit_png_bit_depth(tmp_path):
    "5. A 16-bit PNG holding 10-bit values: depth from sBIT, else the smallest standard depth holding its maximum (with a warning)."
    a = (np.arange(40 * 40).reshape(40, 40) % 1024).astype(np.uint16)
    x = read_image(_png16(tmp_path/'s.png', a, sbit=10))
    assert abs(float(x.max()) - 1.0) < 1e-6 and abs(float(x.flat[512]) - 512 / 1023) < 1e-6
    with pytest.warns(UserWarning, match='sBIT'): y = read_image(_png16(tmp_path/'n.png', a))
    np.testing.assert_allclose(y, x)
    full = (np.arange(40 * 40).reshape(40, 40) * 40).astype(np.uint16)
    np.testing.assert_allclose(read_image(_png16(tmp_path/'f.png', full)), full / 65535, atol=1e-6)
    assert preprocess_u8(tmp_path/'s.png', 32).max() > 200

def test_issue15_flat_csv_collection_to_encoder(tmp_path, cfg, bad_root, capsys):
    "A non-MIMIC collection (flat folder, PNGs and suffix-less DICOMs, string ids, ISO dates) described by the documented CSV alone:"
    "its ALTA table has the MIMIC builder's rows and priors, and a batch of it goes through the ALTA image encoder."
    from alta_nb.mimic import read_checked_csv, SPLIT_COLUMNS
    from alta_nb.alta import build_model
    m = read_metadata(bad_root); sp = read_checked_csv(bad_root/'mimic-cxr-2.0.0-split.csv', SPLIT_COLUMNS)
    d = tmp_path/'coll'; (d/'img').mkdir(parents=True); rows = []
    for k, r in enumerate(m.itertuples()):
        rel = f'p{str(r.subject_id)[:2]}/p{r.subject_id}/s{r.study_id}'
        a = read_image(bad_root/f'files/{rel}/{r.dicom_id}.jpg'); name = f'img/{k:04d}' + ('.png' if k % 2 else '')
        if k % 2: Image.fromarray((a * 255).round().astype(np.uint8)).save(d/name)
        else: write_dicom(d/name, a, bits=12, photometric='MONOCHROME1')
        t = int(r.StudyTime)
        rows.append(dict(subject_id=f'P{r.subject_id}', study_id=f'E{r.study_id}', view=r.ViewPosition, path=name,
                         study_datetime=f'{str(r.StudyDate)[:4]}-{str(r.StudyDate)[4:6]}-{str(r.StudyDate)[6:]} {t // 10000:02d}:{t // 100 % 100:02d}:{t % 100:02d}',
                         report=(bad_root/f'files/{rel}.txt').read_text(), split=dict(zip(sp.dicom_id, sp.split))[r.dicom_id]))
    pd.DataFrame(rows).to_csv(d/'collection.csv', index=False)
    ref = build_alta_table(bad_root, verbose=False).attrs['counts']
    c2 = cfg.replace(data_root=str(d/'collection.csv'), batch_size=4)
    tab = alta_table(c2, 'all'); _, csv = study_root(c2)
    assert 'building the ALTA table' in capsys.readouterr().out
    c = pd.read_csv(csv, dtype=str)
    assert len(tab) == ref['rows'] and (c.last_image_path != '-1').sum() == ref['with_prior'] and (c.auxview_image_path != '-1').sum() == ref['with_lateral']
    b = next(iter(study_dataloader(c2, 'train')))
    model = build_model(c2).eval()
    with torch.no_grad(): z = model.encode_image(b['images'], b['view_mask'])
    assert z.shape[0] == 4 and torch.isfinite(z).all()
