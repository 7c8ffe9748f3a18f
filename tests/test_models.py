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
from alta_nb.alta import build_model, local_alignment_loss, global_contrastive_loss, gather_with_grad, ALTA_KINDS

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
