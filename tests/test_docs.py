"The docs site: built from the smoke run, offline, one page per notebook in lesson order, every page rendered in headless Chromium."
import base64, os, re, shutil, subprocess, tempfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
import nbformat, pytest, yaml
from conftest import ROOT, tail
from alta_nb.docs import build_docs, lesson_notebooks, remote_refs

CHROMIUM = Path('/usr/bin/chromium')
RUN = ROOT/'_runs'/'smoke'


def ensure_chromium() -> Path:
    "Debian's chromium; installed with apt-get when missing, else the test is skipped with the reason."
    if CHROMIUM.exists(): return CHROMIUM
    if not shutil.which('apt-get'): pytest.skip(f'{CHROMIUM} missing and no apt-get to install it')
    env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
    install = ['apt-get', 'install', '-y', '--no-install-recommends', 'chromium']
    p = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    if p.returncode:                                   # stale package lists: refresh once and retry
        subprocess.run(['apt-get', 'update'], capture_output=True, text=True, env=env, timeout=600)
        p = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    if p.returncode or not CHROMIUM.exists():
        pytest.skip(f'`apt-get install -y chromium` failed (exit {p.returncode}): {tail(p.stderr or p.stdout, 3)}')
    return CHROMIUM


def dump_dom(page: Path, profile_dir: Path) -> str:
    "The DOM of `page` after Chromium has loaded it and run its scripts, with the network and GPU off."
    cmd = [str(ensure_chromium()), '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run', f'--user-data-dir={profile_dir}',
           '--dump-dom', page.resolve().as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and '<body' in p.stdout, f'chromium could not render {page}: {tail(p.stderr, 5)}'
    return p.stdout


class Page(HTMLParser):
    "Cells (by kind and id), images and script/link references of a rendered page."
    def __init__(self, html):
        super().__init__(); self.cells, self.imgs, self.refs = [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs); cls = (a.get('class') or '').split()
        if 'jp-Cell' in cls and (a.get('id') or '').startswith('cell-id='):
            self.cells.append(('code' if 'jp-CodeCell' in cls else 'markdown' if 'jp-MarkdownCell' in cls else 'raw', a['id'][8:]))
        if tag == 'img': self.imgs.append(a.get('src') or '')
        if tag == 'script' and 'src' in a: self.refs.append(a['src'])
        if tag == 'link' and 'href' in a: self.refs.append(a['href'])


def check_img(page: Path, src: str):
    "An <img> shows something that exists: a decodable data URI or a file beside the page."
    assert src, f'{page}: <img> without src'
    if src.startswith('data:'):
        head, _, data = src.partition(',')
        raw = base64.b64decode(data) if head.endswith(';base64') else data.encode()
        assert len(raw) > 100, f'{page}: empty inline image'
        if 'image/png' in head: assert raw[:8] == b'\x89PNG\r\n\x1a\n', f'{page}: inline PNG is not a PNG'
    else:
        assert '://' not in src, f'{page}: image from the network {src}'
        assert (page.parent/src.split('#')[0]).resolve().is_file(), f'{page}: missing image {src}'


@pytest.fixture(scope='module')
def site(smoke_run, tmp_path_factory):
    "The smoke run's site, built into a temporary folder (the user's _docs/ is left alone)."
    d = tmp_path_factory.mktemp('docs')
    published = [p.name for p in lesson_notebooks(RUN)]
    index = build_docs('smoke', out=d/'_docs', stage=d/'docs_src')
    return index.parent, d/'docs_src', published


def staged(stage):
    "The executed notebooks exactly as they were published (the run folder may change after the build)."
    return lesson_notebooks(stage/'docs')


def test_one_page_per_notebook_in_lesson_order(site):
    out, stage, published = site
    nbs = [p.name for p in staged(stage)]
    assert nbs and nbs == sorted(nbs) and nbs == published
    nav = [list(d.values())[0] for d in yaml.safe_load((stage/'mkdocs.yml').read_text())['nav']]
    assert nav[0] == 'index.md' and nav[-1] == 'figures.md'
    assert [n for n in nav if n.endswith('.ipynb')] == nbs
    for nb in nbs: assert (out/Path(nb).stem/'index.html').is_file(), f'no page for {nb}'
    assert not (ROOT/'mkdocs.yml').exists() and not (ROOT/'docs').exists()      # nothing new at the top level


def test_offline(site):
    out, _, _ = site
    assert remote_refs(out) == []
    for f in out.rglob('*.html'):              # the plain check: no script/link src/href that is empty or remote
        for tag, url in re.findall(r'<(script|link)\b[^>]*?\b(?:src|href)\s*=\s*"([^"]*)"', f.read_text()):
            assert url and 'http' not in url and not url.startswith('//'), f'{f.relative_to(out)}: <{tag}> {url!r}'


def test_notebook_pages_render_in_chromium(site):
    out, stage, _ = site
    ensure_chromium()
    nbs = staged(stage)
    with tempfile.TemporaryDirectory() as prof, ThreadPoolExecutor(2) as ex:
        doms = list(ex.map(lambda ip: dump_dom(out/ip[1].stem/'index.html', Path(prof)/str(ip[0])), enumerate(nbs)))
    for nb_path, dom in zip(nbs, doms):
        page, nb = out/nb_path.stem/'index.html', nbformat.read(nb_path, as_version=4)
        p = Page(dom)
        want = [(c.cell_type, c.get('id')) for c in nb.cells if c.cell_type in ('code', 'markdown')]
        if all(i for _, i in want):           # every cell of the executed notebook is on the page, in order
            assert p.cells == want, f'{nb_path.name}: rendered cells differ from the notebook\'s'
        else: assert len(p.cells) == len(want), f'{nb_path.name}: {len(p.cells)} cells rendered, {len(want)} in the notebook'
        n_png = sum('image/png' in o.get('data', {}) for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))
        inline = [s for s in p.imgs if s.startswith('data:image/png')]
        assert len(inline) >= n_png, f'{nb_path.name}: {n_png} figures in the notebook, {len(inline)} on the page'
        for src in p.imgs: check_img(page, src)
        for ref in p.refs: assert 'http' not in ref, f'{nb_path.name}: remote {ref}'


def test_figures_gallery_renders(site):
    out, stage, _ = site
    with tempfile.TemporaryDirectory() as prof:
        p = Page(dump_dom(out/'figures'/'index.html', Path(prof)))
    pngs = sorted((stage/'docs'/'figures').glob('*.png'))        # what the gallery staged from figures/smoke/
    assert len(pngs) == len([l for l in (stage/'docs'/'figures.md').read_text().splitlines() if l.startswith('![')])
    gallery = [s for s in p.imgs if s.endswith('.png')]
    assert len(gallery) == len(pngs)
    for src in gallery: check_img(out/'figures'/'index.html', src)
