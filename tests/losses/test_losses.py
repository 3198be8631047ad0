"""Loss properties: zeros, invariances, normalisation, function == module, blending."""

from __future__ import annotations

import pytest
import torch

from impasto.errors import UsageError
from impasto.losses import PerceptualLoss, content_loss, gram_matrix, style_loss, tv_loss
from impasto.losses import functional as LF

KINDS = LF.STYLE_LOSSES
#: statistics of the feature distribution: the patch-based mrf depends on where the pixels are and
#: cannot be merged over tiles, so the permutation and tile properties are not its
DISTRIBUTIONS = [k for k in KINDS if k != "mrf"]


def test_gram_matrix_hand_computed():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # C=2, 2 pixels
    g = gram_matrix(f)
    assert torch.allclose(g, torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2)


def test_masked_gram_equals_gram_of_the_region():
    f = torch.rand(1, 4, 6, 6)
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., :, :3] = 1
    assert torch.allclose(gram_matrix(f, mask), gram_matrix(f[..., :, :3].contiguous()), atol=1e-6)


def test_content_loss_of_an_image_with_itself_is_zero():
    f = torch.rand(2, 8, 5, 5)
    assert content_loss(f, f).item() == 0.0
    assert content_loss(f + 0.1, f).item() > 0


def test_content_loss_is_scale_invariant():
    f, t = torch.rand(1, 8, 5, 5), torch.rand(1, 8, 5, 5)
    assert torch.allclose(content_loss(10 * f, 10 * t), content_loss(f, t))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_and_content_gradients_are_exact_in_either_layout(layout):
    """The one-product Gram backward and the norm-based content loss: gradcheck in float64, the
    same values as the plain formulas, and gradients in the features' own layout (no copy)."""
    from impasto.losses.statistics import as_bcn, gram_product

    torch.manual_seed(0)
    f = torch.randn(2, 5, 7, 6, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_(True)
    t = torch.randn(2, 5, 7, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: gram_product(as_bcn(x)), (f,))
    assert torch.autograd.gradcheck(lambda x: content_loss(x, t), (f,))
    plain = ((f - t).pow(2).flatten(1).mean(1) / t.pow(2).flatten(1).mean(1)).mean()
    assert torch.allclose(content_loss(f, t), plain, rtol=1e-12)
    b, c = f.shape[:2]
    ff = f.reshape(b, c, -1)
    assert torch.allclose(gram_matrix(f), torch.bmm(ff, ff.transpose(1, 2)) / ff.shape[-1], rtol=1e-12)
    (gram_matrix(f).square().sum() + content_loss(f, t)).backward()
    assert f.grad.is_contiguous(memory_format=layout)


def test_tv_of_a_constant_image_is_zero():
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)).item() == 0.0
    assert tv_loss(torch.rand(1, 3, 8, 8)).item() > 0


def test_tv_hand_computed():
    img = torch.zeros(1, 1, 2, 2)
    img[..., 0, 0] = 1.0
    # dy: one pair of 2 differs by 1 -> mean 0.5; dx likewise
    assert tv_loss(img).item() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_style_loss_is_zero_for_identical_inputs(kind):
    f = torch.rand(1, 6, 8, 8)
    assert style_loss(kind, f, f).item() == pytest.approx(0.0, abs=1e-5)
    assert style_loss(kind, f, torch.rand(1, 6, 8, 8) * 2).item() > 1e-3


@pytest.mark.parametrize("kind", DISTRIBUTIONS)
def test_style_loss_is_invariant_to_pixel_permutation(kind):
    f = torch.rand(1, 6, 8, 8)
    t = torch.rand(1, 6, 8, 8)
    perm = torch.randperm(64)
    fp = f.reshape(1, 6, 64)[..., perm].reshape(1, 6, 8, 8)
    assert style_loss(kind, fp, t).item() == pytest.approx(style_loss(kind, f, t).item(), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_style_loss_is_scale_invariant(kind):
    f, t = torch.rand(1, 6, 8, 8), torch.rand(1, 6, 8, 8)
    assert style_loss(kind, 7 * f, 7 * t).item() == pytest.approx(style_loss(kind, f, t).item(), rel=1e-3)


@pytest.mark.parametrize("kind", DISTRIBUTIONS)
def test_statistics_from_tiles_equal_whole_image(kind):
    f = torch.rand(1, 5, 8, 12)
    proj = LF.projections(5, seed=3)
    whole = LF.finalize(kind, LF.accumulate(kind, f, proj=proj))
    left = LF.accumulate(kind, f[..., :5].contiguous(), proj=proj)
    right = LF.accumulate(kind, f[..., 5:].contiguous(), proj=proj)
    merged = LF.finalize(kind, LF.merge_sums(left, right))
    for k in whole:
        assert torch.allclose(whole[k], merged[k], atol=1e-5), k


def test_wasserstein_gradcheck():
    f = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = LF.prepare_target("wasserstein", LF.finalize("wasserstein", LF.accumulate("wasserstein", torch.rand(1, 3, 4, 4, dtype=torch.float64) * 2)))

    def fn(x):
        return LF.style_distance("wasserstein", LF.finalize("wasserstein", LF.accumulate("wasserstein", x)), target)

    assert torch.autograd.gradcheck(fn, (f,), eps=1e-6, atol=1e-4)


def test_gaussian_w2_hand_computed_1d():
    # 1 channel: N(m1, s1^2) vs N(m2, s2^2): W2^2 = (m1-m2)^2 + (s1-s2)^2
    a = torch.tensor([0.0, 2.0]).reshape(1, 1, 1, 2)  # mean 1, std 1
    b = torch.tensor([1.0, 5.0]).reshape(1, 1, 1, 2)  # mean 3, std 2
    sa = LF.finalize("wasserstein", LF.accumulate("wasserstein", a))
    sb = LF.prepare_target("wasserstein", LF.finalize("wasserstein", LF.accumulate("wasserstein", b)))
    expected = ((1 - 3) ** 2 + (1 - 2) ** 2) / (9 + 4)
    assert LF.style_distance("wasserstein", sa, sb).item() == pytest.approx(expected, rel=1e-4)


def test_sliced_barycentre_of_two_styles_lies_between_them():
    a, b = torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8) + 1.0
    proj = LF.projections(4)
    sa = LF.finalize("sliced_wasserstein", LF.accumulate("sliced_wasserstein", a, proj=proj))
    sb = LF.finalize("sliced_wasserstein", LF.accumulate("sliced_wasserstein", b, proj=proj))
    mid = LF.blend_stats("sliced_wasserstein", [sa, sb], [1, 1])
    assert torch.allclose(mid["sorted"], (sa["sorted"] + sb["sorted"]) / 2)


def test_module_equals_function(tiny_encoder):
    content, style, x = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    loss = PerceptualLoss(tiny_encoder, content_layers=["relu4_2"], style_layers=["relu1_1", "relu3_1"], content_weight=2.0, style_weight=3.0, tv_weight=0.5)
    loss.set_content(content)
    loss.set_style([style])
    total, terms = loss(x)
    fx, fc, fs = tiny_encoder(x), tiny_encoder(content), tiny_encoder(style)
    c = content_loss(fx["relu4_2"], fc["relu4_2"])
    s = 0.5 * style_loss("gram", fx["relu1_1"], fs["relu1_1"]) + 0.5 * style_loss("gram", fx["relu3_1"], fs["relu3_1"])
    assert torch.allclose(terms["content"], c) and torch.allclose(terms["style"], s, rtol=1e-5)
    assert torch.allclose(total, 2 * c + 3 * s + 0.5 * tv_loss(x), rtol=1e-5)


def test_batched_equals_per_sample(tiny_encoder):
    loss = PerceptualLoss(tiny_encoder, content_layers=["relu2_1"], style_layers=["relu1_1", "relu2_1"], style_weight=1.0)
    loss.set_style([torch.rand(1, 3, 32, 32)])
    xs, cs = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    _, batched = loss(xs, content=cs)
    singles = [loss(xs[i : i + 1], content=cs[i : i + 1])[1] for i in range(3)]
    for key in ("content", "style"):
        assert batched[key].item() == pytest.approx(sum(s[key].item() for s in singles) / 3, rel=1e-4)


def test_blending_one_style_with_weight_zero_ignores_it(tiny_encoder):
    s1, s2, x = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32) * 0.3, torch.rand(1, 3, 32, 32)
    a = PerceptualLoss(tiny_encoder, content_layers=[], style_layers=["relu2_1"], content_weight=0)
    a.set_style([s1, s2], blend=[1.0, 0.0])
    b = PerceptualLoss(tiny_encoder, content_layers=[], style_layers=["relu2_1"], content_weight=0)
    b.set_style([s1])
    assert torch.allclose(a(x)[0], b(x)[0])


def test_negative_weights_are_refused(tiny_encoder):
    with pytest.raises(UsageError, match="^style_weight must be >= 0") as info:
        PerceptualLoss(tiny_encoder, content_layers=["relu2_1"], style_layers=["relu1_1"], style_weight=-1)
    assert info.value.params == ("style_weight",) and info.value.with_flags().startswith("--style-weight must be >= 0")
    with pytest.raises(UsageError, match="layer weight for relu1_1 must be >= 0"):
        PerceptualLoss(tiny_encoder, content_layers=["relu2_1"], style_layers={"relu1_1": -0.5})
