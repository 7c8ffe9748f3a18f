"""The bad-input catalogue (issue #15): every case is one bad file, row or setting a real collection brings; each must fail
(or, for a recoverable case, warn) with ONE line that names the file/row and the fix, and leave nothing half-written."""
import io, json, os, shutil, struct, zlib
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from alta_nb.core import get_config
from alta_nb.synthcxr import write_synthcxr, write_dicom, ensure_chexpert_like, ensure_rsna_like
from alta_nb.synth_progression import plan_synthcxr
from alta_nb.mimic import build_alta_table, read_metadata, read_checked_csv, SPLIT_COLUMNS, find_csv
from alta_nb.flatcsv import build_alta_table_from_csv
from alta_nb.images import read_image, preprocess_u8, without_dicom_decoders, pydicom_testfile
from alta_nb.data import read_alta_table, study_dataloader, alta_table, StudyDataset, train_tokenizer, study_root
from alta_nb.readers import read_chexpert_csv, read_rsna


@pytest.fixture(scope='module', autouse=True)
def data_env(tmp_path_factory):
    d = tmp_path_factory.mktemp('alta_data'); old = os.environ.get('ALTA_DATA'); os.environ['ALTA_DATA'] = str(d)
    yield d
    if old is None: os.environ.pop('ALTA_DATA', None)
    else: os.environ['ALTA_DATA'] = old

@pytest.fixture(scope='module')
def base(tmp_path_factory):
    "A small MIMIC-CXR-JPG-shaped root (6 subjects × 3 studies), copied afresh for every case."
    return write_synthcxr(tmp_path_factory.mktemp('base')/'r', plan_synthcxr(6, 3, seed=5, size=32, p_no_frontal=0, p_empty_report=0))

def _meta(root, fn):
    p = root/'mimic-cxr-2.0.0-metadata.csv'; m = pd.read_csv(p, dtype={'dicom_id': str}); fn(m).to_csv(p, index=False); return p

def _reports(root):
    m = read_metadata(root)[['subject_id', 'study_id']].drop_duplicates()
    return [root/f'files/p{str(a)[:2]}/p{a}/s{b}.txt' for a, b in zip(m.subject_id, m.study_id)]

def _flat(root, d, **edit):
    "The root as the documented flat CSV (one row per image), reports inline; `edit` = {column: (row, value)}."
    m = read_metadata(root); sp = read_checked_csv(root/'mimic-cxr-2.0.0-split.csv', SPLIT_COLUMNS)
    day = pd.to_datetime(m.StudyDate.astype(str), format='%Y%m%d') + pd.to_timedelta(m.groupby('subject_id').cumcount(), unit='min')
    f = pd.DataFrame(dict(subject_id=m.subject_id.astype(str), study_id=m.study_id.astype(str), study_datetime=day.dt.strftime('%Y-%m-%d %H:%M'),
                          view=m.ViewPosition, path=[f'files/p{str(a)[:2]}/p{a}/s{b}/{c}.jpg' for a, b, c in zip(m.subject_id, m.study_id, m.dicom_id)],
                          report=[(root/f'files/p{str(a)[:2]}/p{a}/s{b}.txt').read_text() for a, b in zip(m.subject_id, m.study_id)],
                          split=m.dicom_id.map(dict(zip(sp.dicom_id, sp.split)))))
    f = f.astype(object)
    for col, (i, v) in edit.items():
        if v is None: f = f.drop(columns=col)
        else: f.loc[i, col] = v
    d.mkdir(parents=True, exist_ok=True); f.to_csv(d/'collection.csv', index=False)
    return d/'collection.csv'

def _png16(path, a):
    Image.fromarray(a.astype(np.uint16)).save(path); return path

# Each case: (root copy, tmp dir) -> (callable, expected exception or warning class, needles, file that must not exist)
def c_zero_rows_empty_reports(r, t):
    for p in _reports(r): p.write_text(' EXAMINATION: CHEST\n INDICATION: cough\n')
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), ValueError, ['mimic-cxr-2.0.0-metadata.csv', '0 rows', 'empty_report=18', 'fix:'], t/'o.csv'
def c_zero_rows_unknown_views(r, t):
    _meta(r, lambda m: m.assign(ViewPosition=m.ViewPosition.replace({'PA': 'AP Supine', 'AP': 'AP Supine', 'LATERAL': 'L'})))
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), ValueError, ['0 rows', 'no_frontal=18', "'AP Supine'", 'view_map='], t/'o.csv'
def c_no_frontal_strict(r, t):
    _meta(r, lambda m: m.assign(ViewPosition=m.ViewPosition.where(m.study_id != m.study_id[0], 'LATERAL')))
    return lambda: build_alta_table(r, t/'o.csv', strict=True, verbose=False), ValueError, ['no frontal (PA/AP)', 'metadata.csv', 'strict=False'], t/'o.csv'
def c_meta_missing_column(r, t):
    _meta(r, lambda m: m.rename(columns={'ViewPosition': 'View'}))
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), ValueError, ['metadata.csv', "missing column(s) ['ViewPosition']", 'expected'], t/'o.csv'
def c_meta_wrong_type(r, t):
    _meta(r, lambda m: m.astype({'StudyDate': object}).assign(StudyDate=lambda d: d.StudyDate.where(d.index != 4, 'May 3')))
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), ValueError, ['metadata.csv', "row 6 column 'StudyDate'", 'expected int'], t/'o.csv'
def c_meta_duplicate_id(r, t):
    _meta(r, lambda m: pd.concat([m, m.iloc[[2]]]))
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), ValueError, ['metadata.csv', 'duplicate dicom_id', 'must appear once'], t/'o.csv'
def c_meta_absent(r, t):
    (r/'mimic-cxr-2.0.0-metadata.csv').unlink()
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), FileNotFoundError, ['mimic-cxr-2.0.0-metadata.csv(.gz) not found', 'expected'], t/'o.csv'
def c_split_row_missing(r, t):
    tab = build_alta_table(r, verbose=False); d = Path(tab.image_path[0]).stem
    p = r/'mimic-cxr-2.0.0-split.csv'; s = pd.read_csv(p, dtype=str); s[s.dicom_id != d].to_csv(p, index=False)
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), ValueError, ['split.csv', repr(d), 'has no split row'], t/'o.csv'
def c_missing_image(r, t):
    tab = build_alta_table(r, verbose=False); (r/tab.image_path[3]).unlink()
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), FileNotFoundError, [Path(tab.image_path[3]).name, 'table row 3', 'check_files=False'], t/'o.csv'
def c_missing_report(r, t):
    rp = _reports(r)[1]; rp.unlink()
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), FileNotFoundError, [rp.name, 'report of study', 'not found'], t/'o.csv'
def c_report_not_utf8(r, t):
    rp = _reports(r)[2]; rp.write_bytes('FINDINGS: Épanchement pleural.\n'.encode('latin-1'))
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), ValueError, [rp.name, 'not UTF-8', 'iconv'], t/'o.csv'
def c_report_empty_strict(r, t):
    rp = _reports(r)[0]; rp.write_text('')
    return lambda: build_alta_table(r, t/'o.csv', strict=True, verbose=False), ValueError, [rp.name, 'empty report', 'strict=False'], t/'o.csv'
def c_csv_missing_column(r, t):
    c = _flat(r, t/'c', view=(0, None))
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', "missing column(s) ['view']"], t/'o.csv'
def c_csv_no_report_column(r, t):
    c = _flat(r, t/'c', report=(0, None))
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', "'report' (text) or 'report_path'"], t/'o.csv'
def c_csv_bad_date(r, t):
    c = _flat(r, t/'c', study_datetime=(3, 'last Tuesday'))
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'row 5', 'ISO 8601'], t/'o.csv'
def c_csv_empty_id(r, t):
    c = _flat(r, t/'c', subject_id=(2, ''))
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'row 4', "'subject_id' is empty"], t/'o.csv'
def c_csv_duplicate_path(r, t):
    c = _flat(r, t/'c'); f = pd.read_csv(c, dtype=str); f.loc[1, 'path'] = f.path[0]; f.to_csv(c, index=False)
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'row 3', 'duplicate path', 'once'], t/'o.csv'
def c_csv_duplicate_study_id(r, t):
    c = _flat(r, t/'c'); f = pd.read_csv(c, dtype=str); j = int((f.subject_id != f.subject_id[0]).idxmax())
    f.loc[j, 'study_id'] = f.study_id[0]; f.to_csv(c, index=False)
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'belongs to two subjects', 'unique'], t/'o.csv'
def c_csv_dates_out_of_order(r, t):
    c = _flat(r, t/'c'); f = pd.read_csv(c, dtype=str); j = int(f.study_id.duplicated().idxmax())
    f.loc[j, 'study_datetime'] = '1999-01-01'; f.to_csv(c, index=False)
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'out of order', 'its own study_id'], t/'o.csv'
def c_csv_two_reports(r, t):
    c = _flat(r, t/'c'); f = pd.read_csv(c, dtype=str); j = int(f.study_id.duplicated().idxmax())
    f.loc[j, 'report'] = 'FINDINGS: another study.'; f.to_csv(c, index=False)
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'different reports', 'one report per study'], t/'o.csv'
def c_csv_bad_split(r, t):
    c = _flat(r, t/'c', split=(0, 'holdout'))
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'row 2', "'holdout'", "'train'"], t/'o.csv'
def c_csv_not_utf8(r, t):
    c = _flat(r, t/'c'); c.write_bytes(c.read_bytes().replace(b'FINDINGS', 'FINDINGS \u00e9'.encode('latin-1'), 1))
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'not a readable CSV', 'UTF-8'], t/'o.csv'
def c_csv_images_missing(r, t):
    c = _flat(r, t/'c')
    return lambda: build_alta_table_from_csv(c, t/'o.csv', verbose=False), FileNotFoundError, ['collection.csv', 'does not exist', 'also', 'check_images=False'], t/'o.csv'
def c_csv_empty_report_strict(r, t):
    c = _flat(r, t/'c'); f = pd.read_csv(c, dtype=str); f.loc[f.study_id == f.study_id[0], 'report'] = ' '; f.to_csv(c, index=False)
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, strict=True, verbose=False), ValueError, ['collection.csv row 2', 'empty report', 'strict=False'], t/'o.csv'
def c_empty_split(r, t):
    c = _flat(r, t/'c'); f = pd.read_csv(c, dtype=str); f['split'] = 'train'; f.to_csv(c, index=False)
    cfg = get_config('smoke', data_root=str(c))   # images are next to the CSV? no: paths are relative to the CSV folder
    for p in f.path: (c.parent/p).parent.mkdir(parents=True, exist_ok=True); shutil.copy(r/p, c.parent/p)
    return lambda: study_dataloader(cfg, 'test'), ValueError, ["split 'test'", 'has no studies', 'alta_train.csv', "{'train': 18}"], None
def c_alta_no_frontal(r, t):
    tab = build_alta_table(r, verbose=False).astype(str); tab.loc[2, 'image_path'] = '-1'; tab.to_csv(t/'a.csv', index=False)
    return lambda: read_alta_table(t/'a.csv'), ValueError, ['a.csv', 'row 4', 'no frontal image'], None
def c_alta_missing_column(r, t):
    build_alta_table(r, verbose=False).drop(columns='report').to_csv(t/'a.csv', index=False)
    return lambda: read_alta_table(t/'a.csv'), ValueError, ['a.csv', "missing column(s) ['report']", 'expected'], None
def c_alta_missing_image(r, t):
    tab = build_alta_table(r, verbose=False); tab.loc[0, 'image_path'] = 'files/nope.jpg'
    return lambda: StudyDataset(tab, r, get_config('smoke'), train_tokenizer(tab.report, 100, 16)), FileNotFoundError, ['nope.jpg', 'does not exist'], None
def c_unknown_split_name(r, t):
    return lambda: alta_table(get_config('smoke', data_root=str(r)), 'dev'), ValueError, ["unknown split 'dev'", 'choose one of'], None
def _img_files(t):
    png = t/'a.png'; Image.fromarray(np.full((40, 40), 128, np.uint8)).save(png)
    jpg = t/'a.jpg'; Image.fromarray(np.full((40, 40), 128, np.uint8)).save(jpg)
    return png, jpg, write_dicom(t/'a.dcm', np.full((40, 40), .5, np.float32), bits=12)
def c_truncated_jpg(r, t):
    _, jpg, _ = _img_files(t); (t/'t.jpg').write_bytes(jpg.read_bytes()[:150])
    return lambda: read_image(t/'t.jpg'), ValueError, ['t.jpg', 'corrupt or truncated', 'not DICOM either', 're-export'], None
def c_corrupt_png(r, t):
    png, _, _ = _img_files(t); (t/'c.png').write_bytes(png.read_bytes()[:60])
    return lambda: preprocess_u8(t/'c.png', 32), ValueError, ['c.png', 'corrupt or truncated', 're-export'], None
def c_junk_without_suffix(r, t):
    (t/'IM0007').write_bytes(b'\x00\x01 not an image' * 30)
    return lambda: read_image(t/'IM0007'), ValueError, ['IM0007', 'corrupt or truncated', 'not DICOM either', 're-export'], None
def c_truncated_dicom(r, t):
    _, _, dcm = _img_files(t); (t/'t.dcm').write_bytes(dcm.read_bytes()[:-700])
    return lambda: read_image(t/'t.dcm'), ValueError, ['t.dcm', 'corrupt or truncated DICOM'], None
def c_truncated_metaless_dicom(r, t):
    import pydicom
    _, _, dcm = _img_files(t); ds = pydicom.dcmread(dcm); ds.preamble = None; del ds.file_meta
    ds.save_as(t/'old', implicit_vr=True, little_endian=True, enforce_file_format=False)
    (t/'IM0008').write_bytes((t/'old').read_bytes()[:-900])
    return lambda: read_image(t/'IM0008'), ValueError, ['IM0008', 'not DICOM either', 'truncated'], None
def c_dicom_without_pixels(r, t):
    import pydicom
    _, _, dcm = _img_files(t); ds = pydicom.dcmread(dcm); del ds.PixelData; ds.save_as(t/'nopix.dcm')
    return lambda: read_image(t/'nopix.dcm'), ValueError, ['nopix.dcm', 'DICOM has no pixel data', 'PixelData'], None
def c_jpeg2000_without_decoder(r, t):
    j2k = pydicom_testfile('RG1_J2KR.dcm')
    if not j2k: pytest.skip('pydicom-data is not installed (pip install pydicom-data)')
    def go():
        with without_dicom_decoders(): read_image(j2k)
    return go, ValueError, ['RG1_J2KR.dcm', 'JPEG 2000', 'no decoder installed', 'pip install pylibjpeg pylibjpeg-openjpeg'], None
def c_missing_image_file(r, t):
    return lambda: read_image(t/'gone.png'), FileNotFoundError, ['gone.png', 'does not exist'], None
def c_png16_without_sbit(r, t):
    p = _png16(t/'tenbit.png', np.arange(1600).reshape(40, 40) % 1024)
    return lambda: read_image(p), UserWarning, ['without a stated bit depth', 'read as 10-bit', 'write an sBIT chunk'], None
def c_chexpert_bad_label(r, t):
    tr = pd.read_csv(ensure_chexpert_like(get_config('smoke'))/'train.csv'); tr['Edema'] = tr['Edema'].astype(object); tr.loc[5, 'Edema'] = 'yes'
    tr.to_csv(t/'train.csv', index=False)
    return lambda: read_chexpert_csv(t/'train.csv'), ValueError, ['train.csv', "row 7 column 'Edema'", '{1, 0, -1, blank}'], None
def c_rsna_bad_target(r, t):
    d = t/'rsna'; shutil.copytree(ensure_rsna_like(get_config('smoke')), d)
    lab = pd.read_csv(d/'stage_2_train_labels.csv'); lab.loc[0, 'Target'] = 3; lab.to_csv(d/'stage_2_train_labels.csv', index=False)
    return lambda: read_rsna(d), ValueError, ['stage_2_train_labels.csv', "row 2 column 'Target'", 'expected 0 or 1'], None
def c_nan_loss(r, t):
    from torch.utils.data import DataLoader, default_collate
    from alta_nb.learner import ToyStudies, ToyStudyModel
    from alta_nb.train import fit
    class Bad(ToyStudyModel):
        def forward(self, batch): out = super().forward(batch); out['loss'] = out['loss'] * float('nan'); return out
    cfg = get_config('smoke', batch_size=8, epochs=1, ckpt_every=0, device='cpu')
    dl = DataLoader(ToyStudies(16, seed=0), batch_size=8, collate_fn=default_collate)
    return lambda: fit(Bad(), dl, cfg, t/'run', progress=False), FloatingPointError, ['non-finite loss nan at step 0', 'last good checkpoint'], None
def c_checkpoint_of_another_model(r, t):
    from alta_nb.learner import ToyStudyModel
    from alta_nb.weights import save_weights, load_weights
    save_weights(ToyStudyModel(dim=32), t/'other.safetensors')
    return lambda: load_weights(ToyStudyModel(dim=16), t/'other.safetensors'), ValueError, ['other.safetensors', 'does not fit this model', 'another config'], None

# --- issue #29: real-data inputs that used to fail silently or with a traceback
def _tied(r, t, ids=('10', '9')):
    "The flat CSV with the first subject's first two studies renamed to `ids` and given one study time."
    c = _flat(r, t/'c'); f = pd.read_csv(c, dtype=str); s = list(dict.fromkeys(f.study_id[f.subject_id == f.subject_id[0]]))
    for old, new in zip(s, ids): f.loc[f.study_id == old, 'study_id'] = new
    f.loc[f.study_id == ids[1], 'study_datetime'] = f.study_datetime[f.study_id == ids[0]].iloc[0]
    f.to_csv(c, index=False); return c, f.subject_id[0], s
def c_csv_header_only(r, t):
    c = _flat(r, t/'c'); c.write_text(c.read_text().splitlines()[0] + '\n')
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'a header but no rows', 're-export'], t/'o.csv'
def c_csv_mixed_utc_offsets(r, t):
    c = _flat(r, t/'c', study_datetime=(0, '2112-04-13 00:00+02:00'))
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'row 3', 'no UTC offset, row 2 has one', 'every value an offset'], t/'o.csv'
def c_csv_same_study_time_strict(r, t):
    c, subj, _ = _tied(r, t)
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, strict=True, verbose=False), ValueError, ['collection.csv', f'subject {subj}', "studies ['9', '10']", 'same study time', 'distinct times', 'strict=False'], t/'o.csv'
def c_csv_same_study_time(r, t):
    c, subj, _ = _tied(r, t)
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), UserWarning, ['collection.csv', f'subject {subj}', "studies ['9', '10']", 'same study time', "none is taken as another's prior", 'listed first'], None
def c_csv_year_only_date(r, t):
    c = _flat(r, t/'c'); f = pd.read_csv(c, dtype=str); f.loc[f.study_id == f.study_id[0], 'study_datetime'] = '2020'; f.to_csv(c, index=False)
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv', 'row 2', "'2020'", 'not a full ISO 8601 date', 'write the day'], t/'o.csv'
def c_csv_day_without_time(r, t):
    c = _flat(r, t/'c'); f = pd.read_csv(c, dtype=str); f['study_datetime'] = f.study_datetime.str[:10]; f.to_csv(c, index=False)
    return lambda: build_alta_table_from_csv(c, t/'o.csv', image_root=r, verbose=False), ValueError, ['collection.csv: row', 'has no time of day', 'another study that day', 'add times'], t/'o.csv'
def c_float_tiff(r, t):
    Image.fromarray(np.linspace(0, 4095, 1600, dtype=np.float32).reshape(40, 40), mode='F').save(t/'raw.tif')
    return lambda: preprocess_u8(t/'raw.tif', 32), UserWarning, ['raw.tif', 'float pixels in [0, 4095]', "image's own min/max", 'store it in [0, 1]'], None
def c_strip_image(r, t):
    Image.fromarray(np.full((300, 1), 128, np.uint8)).save(t/'strip.png')
    return lambda: preprocess_u8(t/'strip.png', 32), ValueError, ['strip.png', '1×300 pixels', 'aspect over 4:1', 're-export'], None
def c_own_table_stale(r, t):
    build_alta_table(r, r/'alta_train.csv', verbose=False); _meta(r, lambda m: m.assign(ViewPosition=m.ViewPosition.replace({'LATERAL': 'LL'})))
    old = (r/'mimic-cxr-2.0.0-metadata.csv').stat().st_mtime - 1; os.utime(r/'alta_train.csv', (old, old))   # edited after the table
    return lambda: alta_table(get_config('smoke', data_root=str(r)), 'all'), ValueError, ['alta_train.csv: older than', 'metadata.csv', 'rebuild it', 'delete it', 'touch it'], None
def c_strict_unknown_views(r, t):
    _meta(r, lambda m: m.assign(ViewPosition=m.ViewPosition.replace({'PA': 'AP Supine'}).where(m.study_id != m.study_id[0], 'LATERAL')))
    return lambda: build_alta_table(r, t/'o.csv', strict=True, verbose=False), ValueError, ['metadata.csv row', "view value 'AP Supine'", 'neither frontal nor lateral', 'view_map=', 'strict=False'], t/'o.csv'
def c_report_utf16_without_bom(r, t):
    rp = _reports(r)[2]; rp.write_bytes(rp.read_text().encode('utf-16-le'))
    return lambda: build_alta_table(r, t/'o.csv', verbose=False), ValueError, [rp.name, 'not UTF-8', 'UTF-16', 'iconv -f utf-16le'], t/'o.csv'
def c_view_map_json_bad(r, t):
    (r/'view_map.json').write_text('["AP Supine", "AP"]')
    return lambda: alta_table(get_config('smoke', data_root=str(r)), 'all'), ValueError, ['view_map.json', 'expected a JSON object', 'fix or delete it'], None

CASES = {k[2:]: v for k, v in dict(globals()).items() if k.startswith('c_')}

def test_catalogue_is_big_enough(): assert len(CASES) >= 30, len(CASES)

@pytest.mark.parametrize('name', sorted(CASES))
def test_bad_input(name, base, tmp_path):
    root = tmp_path/'root'; shutil.copytree(base, root); t = tmp_path/'work'; t.mkdir()
    fn, exc, needles, out = CASES[name](root, t)
    before = {p for p in tmp_path.rglob('*')}
    if issubclass(exc, Warning):
        with pytest.warns(exc) as w: fn()
        msg = str(w[0].message)
    else:
        with pytest.raises(exc) as e: fn()
        msg = str(e.value)
    print(f'{name}: {msg}')
    assert '\n' not in msg and all(n in msg for n in needles), msg
    if out is not None: assert not Path(out).exists()
    half = [p for p in tmp_path.rglob('*') if p not in before and (p.name.startswith('.') or p.suffix in ('.tmp', '.part'))]
    assert not half, half                                                        # nothing half-written is left


# --- issue #29: the inputs that now give the right result
@pytest.mark.parametrize('ids', [('10', '9'), ('9', '10')])
def test_ties_in_study_time_follow_the_rule(base, tmp_path, ids):
    "Studies of a subject at one time are not each other's prior; a later one takes the tied study listed first (never id order)."
    r = tmp_path/'r'; shutil.copytree(base, r); c, subj, old = _tied(r, tmp_path, ids)
    with pytest.warns(UserWarning, match='same study time'): tab = build_alta_table_from_csv(c, image_root=r, verbose=False)
    tab = tab[tab.subject_id == subj].set_index('study_id')
    first = tab.image_path[ids[0]]                                               # the tied study listed first in the file
    assert tab.last_image_path[ids[0]] == tab.last_image_path[ids[1]] == '-1', tab
    later = [s for s in tab.index if s not in ids]; assert tab.last_image_path[later[0]] == first, tab

def test_utc_offsets_order_in_utc(base, tmp_path):
    "Every value with an offset: compared in UTC (10:00+05:00 is before 06:00+00:00)."
    r = tmp_path/'r'; shutil.copytree(base, r); c = _flat(r, tmp_path/'c'); f = pd.read_csv(c, dtype=str)
    s = list(dict.fromkeys(f.study_id[f.subject_id == f.subject_id[0]]))
    f['study_datetime'] = f.study_datetime + '+00:00'
    f.loc[f.study_id == s[0], 'study_datetime'] = '2112-04-13 06:00+00:00'; f.loc[f.study_id == s[1], 'study_datetime'] = '2112-04-13 10:00+05:00'
    f.to_csv(c, index=False)
    tab = build_alta_table_from_csv(c, image_root=r, verbose=False).set_index('study_id')
    assert tab.last_image_path[s[0]] == tab.image_path[s[1]] and tab.last_image_path[s[1]] == '-1', tab

def test_utf16_report_with_bom_is_read(base, tmp_path):
    r = tmp_path/'r'; shutil.copytree(base, r); want = build_alta_table(r, verbose=False)
    for p in _reports(r): p.write_bytes(p.read_text().encode('utf-16'))            # with its byte-order mark
    pd.testing.assert_frame_equal(build_alta_table(r, verbose=False), want)

def test_float_tiff_is_scaled(tmp_path):
    "A float TIFF in [0,1] is read as is; outside [0,1], by its own min/max (a warning), never clipped to white."
    a = np.linspace(0, 1, 1600, dtype=np.float32).reshape(40, 40)
    Image.fromarray(a, mode='F').save(tmp_path/'unit.tif'); np.testing.assert_array_equal(read_image(tmp_path/'unit.tif'), a)
    Image.fromarray(a * 4095, mode='F').save(tmp_path/'raw.tif')
    with pytest.warns(UserWarning, match='own min/max'): x = read_image(tmp_path/'raw.tif')
    np.testing.assert_allclose(x, a, atol=1e-6)
    with pytest.warns(UserWarning): u8 = preprocess_u8(tmp_path/'raw.tif', 32).astype(int)
    assert np.abs(u8 - preprocess_u8(tmp_path/'unit.tif', 32)).max() <= 1 and u8.max() < 255 and u8.min() > 0

def test_view_map_through_data_root(base, tmp_path):
    "The data_root route takes a view map: an argument, or `view_map.json` beside the data; each its own cached table."
    r = tmp_path/'r'; shutil.copytree(base, r)
    _meta(r, lambda m: m.assign(ViewPosition=m.ViewPosition.replace({'PA': 'AP Supine', 'AP': 'AP Supine', 'LATERAL': 'L'})))
    cfg = get_config('smoke', data_root=str(r)); vm = {'AP Supine': 'AP', 'L': 'LATERAL'}
    with pytest.raises(ValueError, match='0 rows'): alta_table(cfg, 'all')
    tab = alta_table(cfg, 'all', view_map=vm)
    assert len(tab) == 18 and (tab.auxview_image_path != '-1').any()
    (r/'view_map.json').write_text(json.dumps(vm))
    pd.testing.assert_frame_equal(alta_table(cfg, 'all'), tab)

def test_own_table_used_while_fresh(base, tmp_path):
    "A root's own alta_train.csv newer than its sources is used as is; a touched one again after a metadata edit."
    r = tmp_path/'r'; shutil.copytree(base, r); build_alta_table(r, r/'alta_train.csv', verbose=False)
    cfg = get_config('smoke', data_root=str(r)); assert study_root(cfg)[1] == r/'alta_train.csv'
    t = (r/'alta_train.csv').stat().st_mtime; os.utime(r/'mimic-cxr-2.0.0-split.csv', (t + 5, t + 5))
    with pytest.raises(ValueError, match='older than'): study_root(cfg)
    (r/'alta_train.csv').touch(); os.utime(r/'alta_train.csv', (t + 10, t + 10)); assert study_root(cfg)[1] == r/'alta_train.csv'
