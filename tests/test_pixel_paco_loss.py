"""PixelPaCoLoss against an independent float64 per-image, per-anchor loop (values and gradients w.r.t. the
embeddings and the logits), its input checks and its behaviour under autocast."""
import pytest
import torch

from timm_paco.losses import PixelPaCoLoss
from reference_losses import pixel_paco_reference

C = 4


def _inputs(n=2, d=5, h=4, w=6, label_size=None, seed=0, ignore_share=0.2):
    g = torch.Generator().manual_seed(seed)
    embed = torch.randn(n, d, h, w, generator=g, dtype=torch.float64)
    logit = torch.randn(n, C, h, w, generator=g, dtype=torch.float64)
    big_h, big_w = label_size or (h, w)
    labels = torch.randint(0, C, (n, big_h, big_w), generator=g)
    labels[torch.rand(n, big_h, big_w, generator=g) < ignore_share] = 255
    return embed, logit, labels


def _compare(loss, embed, logit, labels, seed=None, **ref_kwargs):
    e1, l1 = embed.clone().requires_grad_(), logit.clone().requires_grad_()
    e2, l2 = embed.clone().requires_grad_(), logit.clone().requires_grad_()
    g = None if seed is None else torch.Generator().manual_seed(seed)
    ours = loss(e1, l1, labels, generator=g)
    ref = pixel_paco_reference(e2, l2, labels, num_classes=C, alpha=loss.alpha, beta=loss.beta, gamma=loss.gamma,
                               temperature=loss.temperature, num_pixels=loss.num_pixels, seed=seed, **ref_kwargs)
    ours.backward()
    ref.backward()
    assert ours.dtype == torch.float64  # float64 in, float64 arithmetic (the losses' convention)
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-10, abs=1e-12)
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(l1.grad, l2.grad, rtol=1e-9, atol=1e-12)
    return float(ours.detach())


def test_every_pixel_matches_the_reference():
    value = _compare(PixelPaCoLoss(C, alpha=0.3, num_pixels=None), *_inputs())
    assert value > 0


def test_sampled_pixels_with_a_fixed_generator_match_the_reference():
    loss = PixelPaCoLoss(C, alpha=0.2, num_pixels=9)
    embed, logit, labels = _inputs(n=3)
    a = _compare(loss, embed, logit, labels, seed=7)
    assert a != pytest.approx(_compare(loss, embed, logit, labels, seed=8))  # another draw, another loss
    assert a == pytest.approx(_compare(loss, embed, logit, labels, seed=7))


def test_label_maps_larger_than_the_logits_are_reduced_by_nearest_neighbour():
    embed, logit, labels = _inputs(h=4, w=6, label_size=(16, 24))
    _compare(PixelPaCoLoss(C, alpha=0.1, num_pixels=None), embed, logit, labels)
    small = labels[:, ::4, ::4]  # nearest neighbour at an integer ratio: every 4th pixel
    loss = PixelPaCoLoss(C, alpha=0.1, num_pixels=None)
    assert float(loss(embed, logit, labels)) == pytest.approx(float(loss(embed, logit, small)))


def test_an_image_without_anchors_counts_zero_in_the_batch_mean():
    embed, logit, labels = _inputs(n=2)
    labels[1] = 255  # only ignored pixels: no anchor, yet its pixels are negatives nowhere else (per image)
    loss = PixelPaCoLoss(C, alpha=0.1, num_pixels=None)
    value = _compare(loss, embed, logit, labels)
    only_first = float(loss(embed[:1], logit[:1], labels[:1]))
    assert value == pytest.approx(only_first / 2)
    labels[:] = 255
    e = embed.clone().requires_grad_()
    out = loss(e, logit, labels)
    out.backward()
    assert float(out) == 0.0 and torch.count_nonzero(e.grad) == 0


def test_labels_at_or_above_num_classes_are_negatives_not_anchors():
    embed, logit, labels = _inputs(ignore_share=0.0)
    labels[0, 0, :3] = C + 2  # not anchors, still in the contrast set (the reference treats them the same)
    _compare(PixelPaCoLoss(C, alpha=0.2, num_pixels=None), embed, logit, labels)


@pytest.mark.parametrize('beta,gamma', [(0.0, 1.0), (1.0, 0.0), (0.5, 2.0)])
def test_beta_and_gamma(beta, gamma):
    _compare(PixelPaCoLoss(C, alpha=0.3, beta=beta, gamma=gamma, num_pixels=None), *_inputs(seed=3))


def test_gamma_zero_drops_the_pixels_from_the_denominator_and_alpha_weights_them():
    embed, logit, labels = _inputs(ignore_share=0.0)
    plain = PixelPaCoLoss(C, alpha=1e-9, beta=1.0, gamma=0.0, num_pixels=None)
    ce = torch.nn.functional.cross_entropy(logit.float(), labels)  # alpha -> 0, gamma 0: mean CE per image
    assert float(plain(embed, logit, labels)) == pytest.approx(float(ce), rel=1e-4)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_stays_finite_and_float32(dtype):
    embed, logit, labels = _inputs(n=2, d=16, h=8, w=8)
    e = embed.float().requires_grad_()
    proj = torch.nn.Conv2d(16, 16, 1)
    with torch.autocast('cpu', dtype=dtype):
        out = PixelPaCoLoss(C, num_pixels=32)(proj(e), logit.to(dtype), labels, generator=torch.Generator().manual_seed(0))
    out.backward()
    assert out.dtype == torch.float32 and torch.isfinite(out) and torch.isfinite(e.grad).all()


def test_bad_input_is_one_clear_error():
    embed, logit, labels = _inputs()
    loss = PixelPaCoLoss(C, num_pixels=None)
    with pytest.raises(ValueError, match=r'labels batch \(1\) must equal the logits batch \(2\)'):
        loss(embed, logit, labels[:1])
    with pytest.raises(ValueError, match='must share N, h and w'):
        loss(embed[..., :3], logit, labels)
    with pytest.raises(ValueError, match='num_classes = 4 channels'):
        loss(embed, logit[:, :3], labels)
    with pytest.raises(ValueError, match='integer label map'):
        loss(embed, logit, labels.float())
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match='num_pixels must be an int >= 1 or None'):
            PixelPaCoLoss(C, num_pixels=bad)
    with pytest.raises(ValueError, match='alpha and beta cannot both be 0'):
        PixelPaCoLoss(C, alpha=0, beta=0)
