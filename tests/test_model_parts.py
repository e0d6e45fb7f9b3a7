"""Tensor contracts of every CLIP4HOI part on the tiny configuration."""

import numpy as np
import pytest
import torch

from hoi_edge.model.clip_encoders import encode_text_embeddings
from hoi_edge.model.config import DetectorConfig, clip4hoi_tiny
from hoi_edge.model.detector import DETR, sine_position_embedding
from hoi_edge.model.interactor import box_iou_xyxy, pair_feasibility, spatial_encoding


def test_detr_state_dict_has_the_official_layout():
    keys = DETR(DetectorConfig()).state_dict().keys()
    for expected in ("backbone.0.body.conv1.weight", "backbone.0.body.layer4.2.bn3.running_var",
                     "backbone.0.body.layer1.0.downsample.0.weight", "input_proj.weight", "query_embed.weight",
                     "transformer.encoder.layers.5.self_attn.in_proj_weight",
                     "transformer.decoder.layers.5.multihead_attn.out_proj.bias",
                     "transformer.decoder.norm.weight", "class_embed.weight", "bbox_embed.layers.2.bias"):
        assert expected in keys
    n_params = sum(v.numel() for k, v in DETR(DetectorConfig()).named_parameters())
    assert 41.0e6 < n_params < 41.7e6      # DETR-R50: 41.3M parameters plus the ResNet fc-free body


def test_detector_outputs(tiny_model):
    cfg = tiny_model.cfg.detector
    with torch.no_grad():
        logits, boxes, feats = tiny_model.detector(torch.randn(2, 3, cfg.image_size, cfg.image_size))
    assert logits.shape == (2, cfg.num_queries, cfg.num_classes + 1)
    assert boxes.shape == (2, cfg.num_queries, 4) and feats.shape == (2, cfg.num_queries, cfg.hidden_dim)
    assert boxes.min() >= 0 and boxes.max() <= 1


def test_sine_position_embedding_matches_detr_formula():
    pos = sine_position_embedding(2, 3, 8, torch.device("cpu"))
    assert pos.shape == (6, 8)
    # first half encodes y, second half x; position (0,0): y=x=1/(H or W)*2pi, channel 0 is sin
    assert pos[0, 0] == pytest.approx(np.sin(1 / 2 * 2 * np.pi), abs=1e-5)
    assert pos[0, 4] == pytest.approx(np.sin(1 / 3 * 2 * np.pi), abs=1e-5)


def test_clip_image_encoder_returns_normalised_global_and_patches(tiny_model):
    with torch.no_grad():
        g, p = tiny_model.image_encoder()(torch.randn(1, 3, 64, 64))
    assert g.shape == (1, 64) and p.shape == (1, (64 // 16) ** 2, 64)
    assert torch.allclose(g.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert torch.allclose(p.norm(dim=-1), torch.ones(1, 16), atol=1e-5)
    assert tiny_model.clip.visual.output_tokens is False       # the wrapper restores open_clip's flag


def test_text_encoder_from_embeddings_equals_open_clip(tiny_model):
    ids = tiny_model.classifier.prompts.token_ids[:5]
    with torch.no_grad():
        ours = encode_text_embeddings(tiny_model.clip, tiny_model.clip.token_embedding(ids), ids)
        theirs = tiny_model.clip.encode_text(ids)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_prompt_context_is_spliced_at_prefix_and_conjunction(tiny_model):
    prompts = tiny_model.classifier.prompts
    tok = prompts.tokenizer
    verb, obj = tiny_model.vocab.prompt_parts()[0]                # ('boarding', 'airplane')
    ids = prompts.token_ids[0].tolist()
    n_p, n_c = prompts.prefix.shape[0], prompts.conjunction.shape[0]
    assert ids[0] == tok.sot_token_id and ids[1 + n_p: 1 + n_p + len(tok.encode(verb))] == tok.encode(verb)
    with torch.no_grad():
        emb = prompts(tiny_model.clip.token_embedding)
    assert torch.equal(emb[0, 1:1 + n_p], prompts.prefix)
    c0 = prompts.conj_index[0, 0].item()
    assert torch.equal(emb[0, c0:c0 + n_c], prompts.conjunction)
    # initialised from "a photo of a person": the untrained prompt equals the plain sentence
    plain = torch.tensor([tok.encode(f"a photo of a person {verb} a {obj}")])
    assert torch.equal(emb[0, 1:1 + plain.shape[1]], tiny_model.clip.token_embedding(plain)[0])


def test_text_embeddings_depend_on_learnable_context(tiny_model):
    clf = tiny_model.classifier
    original = clf.prompts.prefix.detach().clone()
    with torch.no_grad():
        before = tiny_model.text_embeddings()
        clf.prompts.prefix.add_(0.5)
        after = tiny_model.text_embeddings()
        clf.prompts.prefix.copy_(original)          # the session fixture must come back bit-exact
    assert before.shape == (600, 64) and torch.allclose(before.norm(dim=-1), torch.ones(600), atol=1e-5)
    assert not torch.allclose(before, after)


def test_spatial_encoding_geometry():
    h = torch.tensor([[0.0, 0.0, 0.4, 0.8]])
    o = torch.tensor([[0.2, 0.4, 0.6, 0.8]])
    f = spatial_encoding(h, o)
    assert f.shape == (1, 38)
    inter, union = 0.2 * 0.4, 0.32 + 0.16 - 0.2 * 0.4
    assert f[0, 13] == pytest.approx(inter / union, rel=1e-4)           # IoU
    assert f[0, 10] == pytest.approx(0.16 / 0.32, rel=1e-4)              # relative area
    dx, dy = (0.4 - 0.2) / 0.4, (0.6 - 0.4) / 0.8
    assert f[0, 14] == pytest.approx(dx, rel=1e-4) and f[0, 15] == 0     # object right of the human
    assert f[0, 18] == pytest.approx(np.hypot(dx, dy), rel=1e-4)
    assert torch.allclose(f[0, 19:], torch.log(f[0, :19] + 1e-6))
    assert box_iou_xyxy(h, h).item() == pytest.approx(1.0, abs=1e-5)


def test_pair_feasibility_masks_non_humans_invalid_and_self_pairs():
    valid = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    human = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    mask = pair_feasibility(valid, human).reshape(4, 4)
    expected = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_hoi_head_ignores_infeasible_pairs(tiny_model):
    """A masked pair's token must not influence feasible pairs through self-attention."""
    torch.manual_seed(1)
    k, d = tiny_model.cfg.hoi.max_instances, tiny_model.cfg.detector.hidden_dim
    feats, boxes = torch.randn(1, k, d), torch.rand(1, k, 2).repeat(1, 1, 2) + torch.tensor([0, 0, 0.3, 0.3])
    valid = torch.tensor([[1.0] * 3 + [0.0] * (k - 3)])
    human = torch.tensor([[1.0] + [0.0] * (k - 1)])
    patches = torch.nn.functional.normalize(torch.randn(1, 16, 64), dim=-1)
    with torch.no_grad():
        a = tiny_model.head(feats, boxes, valid, human, patches)
        feats2 = feats.clone()
        feats2[0, 5] += 10.0                       # change an invalid instance
        b = tiny_model.head(feats2, boxes, valid, human, patches)
    feasible = pair_feasibility(valid, human)[0]
    assert feasible.sum() == 2
    assert a.shape == (1, k * k, 64)
    assert torch.allclose(a[0, feasible], b[0, feasible], atol=1e-5)
    assert torch.allclose(a.norm(dim=-1), torch.ones(1, k * k), atol=1e-5)


def test_hoi_head_with_no_feasible_pair_has_no_nan(tiny_model):
    k = tiny_model.cfg.hoi.max_instances
    with torch.no_grad():
        out = tiny_model.head(torch.randn(1, k, 64), torch.rand(1, k, 4), torch.zeros(1, k), torch.zeros(1, k),
                              torch.randn(1, 16, 64))
    assert torch.isfinite(out).all()


def test_classifier_logits_and_score_range(tiny_model):
    clf = tiny_model.classifier
    with torch.no_grad():
        text = tiny_model.text_embeddings()
        pair = torch.nn.functional.normalize(torch.randn(1, 5, 64), dim=-1)
        glob = torch.nn.functional.normalize(torch.randn(1, 64), dim=-1)
        pl, gl = clf.logits(pair, glob, text)
    assert pl.shape == (1, 5, 600) and gl.shape == (1, 600)
    scale = clf.pair_logit_scale.exp().item()
    assert pl.abs().max() <= scale + abs(clf.pair_logit_bias.item()) + 1e-4
    p = clf.scoring_params()
    assert p.pair_scale == pytest.approx(clip4hoi_tiny().hoi.init_logit_scale, rel=1e-5)


def test_pretrained_parts_are_frozen_and_head_trains(tiny_model):
    trainable = {n.split(".")[0] for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert trainable == {"head", "classifier"}
    tiny_model.train()
    assert not tiny_model.detector.training and not tiny_model.clip.training and tiny_model.head.training
    tiny_model.eval()
