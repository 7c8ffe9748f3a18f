"Models layer: MRM objectives and checkpoint map, adapters, temporal multiview, text tower, ALTA and its factory."
import math
import pytest
import torch
import torch.nn.functional as F
from alta_nb.core import get_config, seed_everything
from alta_nb.mrm import (MRM, build_vit, official_mrm_state_dict, random_masking, patchify, unpatchify, mae_loss,
                         mask_report_tokens, make_bert_config)
from alta_nb.adapters import add_vit_adapters, add_bert_adapters, count_parameters, mark_trainable, ALTA_TRAINABLE
from alta_nb.multiview import MultiViewEncoder
from alta_nb.text import TextTower, check_tokenizer, build_text_tower
from alta_nb.alta import build_model, ALTA_KINDS
from alta_nb.losses import local_alignment_loss, global_contrastive_loss, gather_with_grad
from alta_nb.weights import mrm_key_map, cxrbert_key_map, save_weights, load_weights, model_state

torch.set_num_threads(1)
CFG = get_config('smoke')


def make_batch(cfg=CFG, B=4, L=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    S, H = cfg.image_size, cfg.hires_size
    ids = torch.randint(5, cfg.vocab_size, (B, L), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    am = torch.ones(B, L, dtype=torch.long)
    ids[0, 8:], am[0, 8:] = 0, 0                     # one padded report
    vm = torch.ones(B, 4, dtype=torch.bool); vm[1, 2:] = False; vm[2, 1:] = False
    images = torch.randn(B, 4, 3, S, S, generator=g) * vm[..., None, None, None]
    return dict(images=images, view_mask=vm, hires=torch.randn(B, 3, H, H, generator=g), input_ids=ids, attention_mask=am)


def test_paper_trainable_fraction_counted_like_official():
    model = build_model(get_config('paper'), 'alta', device='meta')
    c = count_parameters(model)
    assert 0.07 <= c['fraction'] <= 0.09, c
    assert 230e6 < c['total'] < 260e6                 # ViT-B + decoder + BERT-base
    # tied MLM output matrix is the frozen word embedding, counted once
    assert model.text.mlm.cls.predictions.decoder.weight is model.text.mlm.bert.embeddings.word_embeddings.weight
    assert not model.text.mlm.bert.embeddings.word_embeddings.weight.requires_grad
    assert not model.bert_embed.weight.requires_grad   # official quirk kept
    assert model.image.vit.blocks[0].attn_adapter.up.weight.requires_grad


@pytest.mark.parametrize('kind', ALTA_KINDS)
def test_every_kind_trains_on_the_batch_contract(kind):
    seed_everything(0)
    model = build_model(CFG, kind, device='cpu')
    out = model(make_batch())
    assert torch.isfinite(out['loss'])
    want = {'alta': 4, 'alta_full': 4, 'clip_scratch': 2, 'mrm': 2}[kind]
    assert len([k for k in out if k.endswith('_loss')]) == want
    out['loss'].backward()
    frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert frozen_with_grad == []
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []                                 # DDP-safe: every trainable parameter is reached by a loss
    if kind != 'mrm':
        model.eval()
        with torch.no_grad():
            i1 = model.encode_image(make_batch()['images'][:, 0]); t = model.encode_text(make_batch()['input_ids'], make_batch()['attention_mask'])
        assert i1.shape == t.shape == (4, CFG.embed_dim)
        assert torch.allclose(i1.norm(dim=-1), torch.ones(4), atol=1e-5)
        assert model.similarity(i1, t).shape == (4, 4)


def test_alta_trains_only_the_rule():
    model = build_model(CFG, 'alta', device='cpu')
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 'image.vit.blocks.0.attn.qkv.weight' not in names and 'image.vit.patch_embed.proj.weight' not in names
    assert 'image.vit.pos_embed' not in names and 'image.missing_token' not in names
    assert {'image.vit.cls_token', 'image.view_embedding', 'image.temporal_embedding', 'decoder.pred.weight',
            'decoder.embed.weight', 'decoder.mask_token', 'logit_scale', 'logit_scale_local3',
            'text.mlm.cls.predictions.transform.dense.weight', 'text.cls_projection_head.dense_to_hidden.weight'} <= names
    masked = build_model(CFG.replace(multiview='masked'), 'alta', device='cpu')
    assert masked.image.missing_token.requires_grad


def test_zero_init_adapters_leave_frozen_output_unchanged():
    torch.manual_seed(0)
    vit = build_vit(CFG).eval(); x = torch.randn(2, 3, CFG.image_size, CFG.image_size)
    with torch.no_grad(): before = vit.forward_features(x)
    add_vit_adapters(vit, init='zero')
    with torch.no_grad(): assert torch.equal(vit.forward_features(x), before)
    from transformers import BertForMaskedLM
    bert = BertForMaskedLM(make_bert_config(CFG)).eval(); ids = torch.randint(5, 100, (2, 7))
    with torch.no_grad(): b0 = bert(input_ids=ids).logits
    add_bert_adapters(bert, init='zero')
    with torch.no_grad(): assert torch.equal(bert(input_ids=ids).logits, b0)
    with pytest.raises(ValueError, match='already has adapters'): add_bert_adapters(bert)


def test_official_mrm_checkpoint_map(tmp_path):
    sd = official_mrm_state_dict(CFG)
    torch.save({'model': sd}, tmp_path/'MRM.pth')
    model = build_model(CFG.replace(mrm_checkpoint=str(tmp_path/'MRM.pth')), 'alta', device='cpu')
    assert torch.equal(model.image.vit.blocks[0].attn.qkv.weight.detach(), sd['blocks.0.attn.qkv.weight'])
    assert torch.equal(model.decoder.blocks[0].mlp.fc1.weight.detach(), sd['decoder_blocks.0.mlp.fc1.weight'])
    assert torch.equal(model.decoder.mask_token.detach(), sd['mask_token'])
    bad = dict(sd); del bad['decoder_pred.weight']
    with pytest.raises(ValueError, match=r"lacks 1 MRM key\(s\), e.g. \['decoder.pred.weight'\]"): model.load_mrm_state(bad)
    bad = dict(sd); bad['pos_embed'] = torch.zeros(1, 5, CFG.vit_dim)
    with pytest.raises(ValueError, match="'pos_embed' has shape"): model.load_mrm_state(bad)
    with pytest.raises(FileNotFoundError, match='put the official MRM.pth there'):
        build_model(CFG.replace(mrm_checkpoint=str(tmp_path/'none.pth')), device='cpu')
    # the kit's own MRM model hands its encoder+decoder over too
    mrm = MRM(CFG)
    rep = model.load_mrm_state(mrm.state_dict())
    assert rep['missing'] == [] and torch.equal(model.image.vit.norm.weight.detach(), mrm.vit.norm.weight.detach())


def test_masking_patchify_and_losses():
    x = torch.randn(3, 16, 8)
    kept, mask, ids_restore = random_masking(x, 0.75)
    assert kept.shape == (3, 4, 8) and mask.sum().item() == 36
    assert torch.equal(torch.cat([kept, x.new_zeros(3, 12, 8)], 1).gather(1, ids_restore[..., None].expand(-1, -1, 8))[mask == 0],
                       x[mask == 0])
    img = torch.randn(2, 3, 64, 64)
    assert torch.equal(unpatchify(patchify(img, 32), 32), img)
    ids = torch.tensor([[2, 7, 8, 9, 3, 0]]); lab_in = ids.clone()
    masked, labels = mask_report_tokens(ids, (ids != 0).long(), 1.0, 4, {0, 1, 2, 3, 4})
    assert masked.tolist() == [[2, 4, 4, 4, 3, 0]] and labels.tolist() == [[-100, 7, 8, 9, -100, -100]]
    e = F.normalize(torch.randn(5, 8), dim=-1)
    assert abs(global_contrastive_loss(e, e, torch.tensor(0.0)).item() - math.log(5)) < 1e-5
    assert gather_with_grad(e) is e


def test_alignment_and_pretraining_mask_their_own_ratios():
    "`align_mask_ratio` sets the share of patches alignment hides; MRM pretraining keeps `mask_ratio`."
    from alta_nb.stages import model_key
    cfg = CFG.replace(mask_ratio=0.75, align_mask_ratio=0.5)
    seen = {}
    for kind in ('alta', 'mrm'):
        seed_everything(0)
        m = build_model(cfg, kind=kind, device='cpu')
        enc = m.image if kind == 'alta' else m
        name = 'forward' if kind == 'alta' else 'encode_masked'
        orig = getattr(enc, name)
        def spy(*a, _orig=orig, _kind=kind, **kw):
            out = _orig(*a, **kw)
            seen[_kind] = float((out['mask'] if isinstance(out, dict) else out[1]).float().mean())
            return out
        setattr(enc, name, spy)
        m(make_batch(cfg))
    n = (cfg.image_size // cfg.patch_size) ** 2
    hidden = lambda r: (n - int(n * (1 - r))) / n                 # `random_masking` keeps int(N·(1-r))
    assert seen == {'alta': hidden(0.5), 'mrm': hidden(0.75)}, seen
    same = lambda k, **o: model_key(cfg.replace(**o), k) == model_key(cfg, k)
    assert same('mrm', align_mask_ratio=0.25) and not same('alta', align_mask_ratio=0.25)
    assert not same('mrm', mask_ratio=0.5)

def test_align_text_dropout_sets_the_report_towers_dropout_only():
    """`align_text_dropout`: every dropout of an aligned model's report tower (BERT's hidden and attention); the MRM
    keeps BERT's 0.1, its cache key ignores the field, and at 0 a training-mode report embedding is deterministic."""
    from alta_nb.stages import model_key
    drops = lambda mod: {m.p for m in mod.modules() if isinstance(m, torch.nn.Dropout)}
    for kind in ('alta', 'clip_scratch', 'alta_full'):
        assert drops(build_model(CFG.replace(align_text_dropout=0.0), kind=kind, device='cpu').text) == {0.0}, kind
    assert drops(build_model(CFG, device='cpu').text) == {0.1}                    # BERT's (CXR-BERT's) default
    assert 0.1 in drops(build_model(CFG.replace(align_text_dropout=0.0), kind='mrm', device='cpu'))
    same = lambda k: model_key(CFG.replace(align_text_dropout=0.0), k) == model_key(CFG, k)
    assert same('mrm') and not same('alta')
    b = make_batch()
    for p, deterministic in ((0.0, True), (0.3, False)):
        m = build_model(CFG.replace(align_text_dropout=p), device='cpu').train()
        e1, e2 = (m.encode_text(b['input_ids'], b['attention_mask']) for _ in range(2))
        assert torch.equal(e1, e2) == deterministic, p

def test_batchnorm_head_standardises_both_towers():
    "`head_init='batchnorm'`: a BatchNorm (no affine) before each global head; image and report side alike."
    for head, norm in (('default', torch.nn.Identity), ('batchnorm', torch.nn.BatchNorm1d)):
        m = build_model(CFG.replace(head_init=head), device='cpu')
        assert isinstance(m.image_feature_norm, norm) and isinstance(m.text.feature_norm, norm), head
    m.train()(make_batch())                       # training batches move the running statistics ...
    assert m.text.feature_norm.num_batches_tracked.item() == 1 and not m.text.feature_norm.affine
    b = make_batch()
    same = m.eval().encode_text(b['input_ids'][:2], b['attention_mask'][:2])
    test = m.encode_text(b['input_ids'], b['attention_mask'])[:2]     # ... evaluation uses them
    assert torch.allclose(same, test, atol=1e-6)

def test_local_loss_matches_official_loop():
    g = torch.Generator().manual_seed(1)
    P, W = torch.randn(4, 10, 8, generator=g), torch.randn(4, 6, 8, generator=g)
    lens = [6, 2, 4, 1]; wm = torch.arange(6)[None] < torch.tensor(lens)[:, None]
    t1, t2, t3 = 4.0, 5.0, 10.0
    sims = []
    for t in range(4):                                  # the official loop (loss_functions.py::LocalClipLoss)
        w = W[t, :lens[t]]
        a = torch.einsum('ipd,wd->ipw', P, w).softmax(-1)
        a = (t1 * a.transpose(1, 2)).softmax(-1)
        ctx = torch.einsum('iwp,ipd->iwd', a, P)
        cos = F.cosine_similarity(w[None].expand(4, -1, -1), ctx, dim=-1)
        sims.append(torch.log((t2 * cos).exp().sum(1)))
    s = t3 * torch.stack(sims, 1); lab = torch.arange(4)
    ref = (F.cross_entropy(s, lab) + F.cross_entropy(s.T, lab)) / 2
    assert torch.allclose(local_alignment_loss(P, W, wm, t1, t2, t3, chunk=3), ref, atol=1e-5)


def test_multiview_missing_views():
    torch.manual_seed(0)
    vit = add_vit_adapters(build_vit(CFG))
    b = make_batch()
    for variant in ('official', 'masked'):
        enc = MultiViewEncoder(vit, variant).eval()
        noisy = b['images'].clone(); noisy[~b['view_mask']] = torch.randn_like(noisy[~b['view_mask']])
        with torch.no_grad():
            a = enc(b['images'], b['view_mask'])['pooled']; c = enc(noisy, b['view_mask'])['pooled']
        assert torch.allclose(a, c, atol=1e-6)          # a missing view's pixels never matter
    enc = MultiViewEncoder(vit, 'masked').eval()
    with torch.no_grad():                               # masked mean: study of 2 present views == those 2 views alone
        full = enc(b['images'][1:2], b['view_mask'][1:2])['pooled']; two = enc(b['images'][1:2, :2])['pooled']
    assert torch.allclose(full, two, atol=1e-5)


def test_bad_input_one_line_errors():
    with pytest.raises(ValueError, match='image_size=72 is not divisible by patch_size=16'): build_model(CFG.replace(image_size=72), device='meta')
    model = build_model(CFG, device='cpu')
    S = CFG.image_size
    with pytest.raises(ValueError, match='expected 1, 2 or 4 views'): model.encode_image(torch.randn(2, 3, 3, S, S))
    with pytest.raises(ValueError, match='expected 3 channels, got 1'): model.encode_image(torch.randn(2, 1, S, S))
    with pytest.raises(ValueError, match="missing key 'hires'"): model({k: v for k, v in make_batch().items() if k != 'hires'})
    with pytest.raises(ValueError, match='vocabulary has 1000'):
        model.encode_text(torch.full((1, 4), 5000), torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown model kind"): build_model(CFG, 'bert')

    class FakeTok:                                      # a tokenizer of the wrong size
        def __len__(self): return 77
    with pytest.raises(ValueError, match="tokenizer has 77 tokens but the text tower's vocabulary has 1000"):
        check_tokenizer(model.text, FakeTok())


def test_factory_with_a_trained_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.WordPiece(unk_token='[UNK]'))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True); tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(['no acute process', 'small left pleural effusion'] * 4,
                            trainers.WordPieceTrainer(vocab_size=80, special_tokens=['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']))
    tok.post_processor = processors.TemplateProcessing(single='[CLS] $A [SEP]', special_tokens=[('[CLS]', 2), ('[SEP]', 3)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token='[PAD]', unk_token='[UNK]', cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')
    for kind in ('alta', 'mrm'):
        m = build_model(CFG, kind, tokenizer=hf, device='cpu')
        vocab = m.text.vocab_size if kind == 'alta' else m.mlm.config.vocab_size
        assert vocab == len(hf)
    enc = hf(['no acute process', 'small effusion'], padding=True, return_tensors='pt')
    assert m.encode_text(enc['input_ids'], enc['attention_mask']).shape[0] == 2


def test_text_tower_from_the_kits_mrm_report_model():
    mrm = build_model(CFG, 'mrm', device='cpu')
    alta = build_model(CFG, 'alta', device='cpu')
    rep = alta.load_text_state(mrm.state_dict())
    assert torch.equal(alta.text.mlm.bert.encoder.layer[1].output.dense.weight.detach(), mrm.mlm.bert.encoder.layer[1].output.dense.weight.detach())
    assert not any('adapter' in k for k in rep['loaded'])
    with pytest.raises(ValueError, match='lacks'): alta.load_text_state({'bert.embeddings.word_embeddings.weight': alta.text.mlm.bert.embeddings.word_embeddings.weight.detach()})


def _class_swap_reference(vit, bert, ratio, init):
    "The adapters as they were inserted before (each block's class swapped in place): the reference for names and numbers."
    from timm.models.vision_transformer import Block
    from transformers.models.bert.modeling_bert import BertSelfOutput, BertOutput
    from alta_nb.adapters import Adapter

    class SwapBlock(Block):
        def forward(self, x, attn_mask=None, is_causal=False):
            x = x + self.drop_path1(self.ls1(self.attn_adapter(self.attn(self.norm1(x), attn_mask=attn_mask, is_causal=is_causal))))
            xn = self.norm2(x)
            return x + self.drop_path2(self.ls2(self.mlp(xn) + self.adapter_scale * self.mlp_adapter(xn)))

    class SwapSelfOutput(BertSelfOutput):
        def forward(self, h, x): return self.attn_adapter(super().forward(h, x))

    class SwapOutput(BertOutput):
        def forward(self, h, x): return super().forward(h, x) + self.adapter_scale * self.mlp_adapter(x)

    for blk in vit.blocks:
        d = blk.norm1.normalized_shape[0]
        blk.attn_adapter, blk.mlp_adapter = Adapter(d, ratio, True, init, 'vit'), Adapter(d, ratio, False, init, 'vit')
        blk.adapter_scale, blk.__class__ = 0.5, SwapBlock
    for layer in [m for m in bert.modules() if type(m).__name__ == 'BertLayer']:
        d = layer.output.dense.out_features
        layer.attention.output.attn_adapter = Adapter(d, ratio, True, init, 'bert')
        layer.output.mlp_adapter = Adapter(d, ratio, False, init, 'bert')
        layer.output.adapter_scale = 0.5
        layer.attention.output.__class__, layer.output.__class__ = SwapSelfOutput, SwapOutput


@pytest.mark.parametrize('init', ['default', 'zero'])
def test_adapter_composition_matches_the_class_swap_reference(init):
    from transformers import BertForMaskedLM
    def towers():
        torch.manual_seed(0)
        return build_vit(CFG), BertForMaskedLM(make_bert_config(CFG))
    vit, bert = towers(); add_vit_adapters(vit, 0.25, init); add_bert_adapters(bert, 0.25, init); after = torch.rand(3)
    rvit, rbert = towers(); _class_swap_reference(rvit, rbert, 0.25, init); ref_after = torch.rand(3)
    assert torch.equal(after, ref_after)                       # the same random draws, in the same order
    for ours, ref in ((vit, rvit), (bert, rbert)):
        a, b = ours.state_dict(), ref.state_dict()
        assert list(a) == list(b)                              # identical keys, in the same order
        assert all(torch.equal(a[k], b[k]) for k in a)
        with torch.no_grad():                                  # trained (non-zero) adapters
            for m in (ours, ref):
                g = torch.Generator().manual_seed(1)
                for n, p in m.named_parameters():
                    if 'adapter' in n: p.normal_(generator=g)
    assert {'blocks.0.attn_adapter.up.weight', 'blocks.0.mlp_adapter.down.bias', 'blocks.0.attn.qkv.weight'} <= set(vit.state_dict())
    assert {'bert.encoder.layer.0.attention.output.attn_adapter.up.weight', 'bert.encoder.layer.0.output.mlp_adapter.down.weight',
            'bert.encoder.layer.0.output.dense.weight', 'bert.encoder.layer.0.attention.output.LayerNorm.bias'} <= set(bert.state_dict())
    x, ids = torch.randn(2, 3, CFG.image_size, CFG.image_size), torch.randint(5, 100, (2, 9))
    for train in (False, True):                                # dropout draws match too
        for m in (vit, rvit, bert, rbert): m.train(train)
        torch.manual_seed(3); o = vit.forward_features(x); torch.manual_seed(3); r = rvit.forward_features(x)
        assert torch.equal(o, r)
        torch.manual_seed(3); o = bert(input_ids=ids).logits; torch.manual_seed(3); r = rbert(input_ids=ids).logits
        assert torch.equal(o, r)
    rbert.load_state_dict(bert.state_dict())                   # a checkpoint of one loads into the other


def test_weights_key_maps_and_round_trip(tmp_path):
    assert mrm_key_map('decoder_blocks.1.mlp.fc2.bias') == 'decoder.blocks.1.mlp.fc2.bias'
    assert mrm_key_map('blocks.0.attn.proj.weight') == 'vit.blocks.0.attn.proj.weight'
    assert mrm_key_map('bert_mlp.weight') is None
    assert cxrbert_key_map('cls.predictions.bias') == 'mlm.cls.predictions.bias'
    assert cxrbert_key_map('cls_projection_head.dense_to_output.weight') == 'cls_projection_head.dense_to_output.weight'
    assert cxrbert_key_map('mlm.bert.embeddings.word_embeddings.weight') is None
    assert cxrbert_key_map('mlm.bert.embeddings.word_embeddings.weight', mrm_mlm=True) == 'mlm.bert.embeddings.word_embeddings.weight'
    a, b = build_model(CFG, 'alta', device='cpu'), build_model(CFG, 'alta', device='cpu')
    _, aliases = model_state(a)
    assert aliases == {'text.mlm.cls.predictions.decoder.weight': 'text.mlm.bert.embeddings.word_embeddings.weight',
                       'text.mlm.cls.predictions.decoder.bias': 'text.mlm.cls.predictions.bias'}
    load_weights(b, save_weights(a, tmp_path/'a.safetensors'))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_compare_fusion_adds_a_learned_map_of_the_change():
    "07's `compare` fusion: masked mean + W (current mean − prior mean), hand-computed; trained by ALTA's rule."
    model = build_model(CFG.replace(multiview='compare'), 'alta', device='cpu')
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {'image.temporal_compare.weight', 'image.temporal_compare.bias', 'image.missing_token'} <= names
    enc = model.image.eval()
    torch.manual_seed(0)
    with torch.no_grad(): enc.temporal_compare.weight.normal_(); enc.temporal_compare.bias.normal_()
    cls = torch.randn(3, 4, CFG.vit_dim)
    vm = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    got = enc.pool(cls, vm)
    W, b = enc.temporal_compare.weight, enc.temporal_compare.bias
    full = cls[0].mean(0) + W @ (cls[0, :2].mean(0) - cls[0, 2:].mean(0)) + b
    frontals = (cls[1, 0] + cls[1, 2]) / 2 + W @ (cls[1, 0] - cls[1, 2]) + b
    no_prior = cls[2, :2].mean(0)                       # no prior: the masked mean, W unused
    assert torch.allclose(got, torch.stack([full, frontals, no_prior]), atol=1e-5)
    model.train()
    out = model(make_batch())
    out['global_loss'].backward()
    assert model.image.temporal_compare.weight.grad is not None
