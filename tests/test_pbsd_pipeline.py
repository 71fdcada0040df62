"""PBSD's data path and teacher: boxes on the flipped query view, patches cropped there, the batch layout, the
prefetcher, RoIAlign pooling (a whole-view box is the global average, CNN and ViT), and the DSCL task with it."""
import random

import numpy as np
import pytest
import timm
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision import transforms

from timm_paco.data import (
    PatchBatch, PatchBoxSampler, PatchCollate, PatchViewTransform, PatchViews, check_patch_args,
    create_patch_view_transform, create_view_loader, create_view_transform,
)
from timm_paco.methods import create_task
from timm_paco.tasks import create_contrastive_module
from timm_paco.tasks.patch_teacher import box_bins, box_sampling_ratio, last_feature_map


def _gradient_image(size=40):
    """An RGB image whose pixel (x, y) is (x, y, 255 - x) scaled: every crop and flip is recognisable."""
    x = np.tile(np.arange(size, dtype=np.float64), (size, 1))
    rgb = np.stack([x, x.T, size - 1 - x], axis=-1) * (255 / (size - 1))
    return Image.fromarray(rgb.round().astype(np.uint8))


def test_box_sampler_draws_boxes_inside_with_the_area_and_aspect_asked():
    torch.manual_seed(0)
    sampler = PatchBoxSampler(num_patches=200, scale=(0.05, 0.6), ratio=(3 / 4, 4 / 3))
    boxes = sampler(Image.new('RGB', (64, 48)))
    assert boxes.shape == (200, 4) and boxes.dtype == torch.float32
    x1, y1, x2, y2 = boxes.unbind(1)
    assert bool((x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 64).all() and (y2 <= 48).all())
    area = (x2 - x1) * (y2 - y1) / (64 * 48)
    aspect = (x2 - x1) / (y2 - y1)
    # integer rounding of the sides moves area and aspect a little past the sampled range
    assert area.min() > 0.04 and area.max() < 0.65 and aspect.min() > 0.6 and aspect.max() < 1.5
    assert area.std() > 0.1  # drawn, not fixed


def test_patches_are_crops_of_the_flipped_query_view():
    """Geometry = an always-flip crop; identity appearance and student: every patch is its box cropped from the
    query view the model sees (so the box followed the flip), resized to the patch size."""
    img = _gradient_image()
    geometry = transforms.Compose([transforms.CenterCrop(32), transforms.RandomHorizontalFlip(p=1.0)])
    to_tensor = transforms.PILToTensor()
    transform = PatchViewTransform(geometry, to_tensor, transforms.Compose([transforms.CenterCrop(32), to_tensor]),
                                   PatchBoxSampler(4), to_tensor, patch_size=8, interpolation='bilinear')
    torch.manual_seed(1)
    sample = transform(img)
    assert isinstance(sample, PatchViews)
    query, key = sample.views
    assert not torch.equal(query, key) and torch.equal(query, key.flip(-1))  # the query is the flipped crop
    assert sample.patches.shape == (4, 3, 8, 8) and sample.boxes.shape == (4, 4)
    for patch, (x1, y1, x2, y2) in zip(sample.patches, sample.boxes.int().tolist()):
        crop = TF.resize(query[:, y1:y2, x1:x2], [8, 8], antialias=True)
        assert torch.equal(patch, crop)


def test_patch_transform_from_timm_views_and_the_collated_layout():
    parts = create_view_transform(32, views='randcls_sim', use_prefetcher=True, gaussian_blur_prob=0.0,
                                  separate=True)
    transform = create_patch_view_transform(parts, num_patches=3, patch_size=16, use_prefetcher=True)
    torch.manual_seed(0)
    samples = [(transform(_gradient_image()), label) for label in range(2)]
    assert samples[0][0].patches.dtype == torch.uint8 and samples[0][0].views[0].shape == (3, 32, 32)
    views, carried = PatchCollate(use_prefetcher=True)(samples)
    assert views.shape == (4, 3, 32, 32) and carried.target.tolist() == [0, 1]
    assert torch.equal(views[1], samples[1][0].views[0]) and torch.equal(views[2], samples[0][0].views[1])
    floats = [(PatchViews(tuple(v.float() for v in s.views), s.patches.float(), s.boxes), y) for s, y in samples]
    batch, target = PatchCollate(use_prefetcher=False)(floats)
    assert isinstance(batch, PatchBatch) and torch.equal(batch.views, views.float()) and target.tolist() == [0, 1]
    assert torch.equal(batch.patches, carried.patches.float()) and torch.equal(batch.boxes, carried.boxes)
    assert batch.patches.shape == (6, 3, 16, 16) and batch.boxes.shape == (3, 2, 4)
    for j in range(3):  # patch-major: row j·B + i is patch j of image i
        for i in range(2):
            assert torch.equal(batch.patches[j * 2 + i], samples[i][0].patches[j])
            assert torch.equal(batch.boxes[j, i], samples[i][0].boxes[j])


def test_prefetcher_and_plain_loader_give_the_same_normalised_batch():
    class _Images(torch.utils.data.Dataset):
        transform = None

        def __len__(self):
            return 4

        def __getitem__(self, index):
            return self.transform(_gradient_image()), index

    batches = []
    for prefetch in (True, False):
        parts = create_view_transform(32, views='sim_sim', use_prefetcher=prefetch, gaussian_blur_prob=0.0,
                                      separate=True)
        transform = create_patch_view_transform(parts, num_patches=2, patch_size=16, use_prefetcher=prefetch)
        loader = create_view_loader(_Images(), transform, batch_size=2, is_training=False, use_prefetcher=prefetch,
                                    num_workers=0, device=torch.device('cpu'))
        torch.manual_seed(0)
        random.seed(0)  # timm's crop draws from Python's RNG
        batches.append(next(iter(loader)))
    (a, ta), (b, tb) = batches
    assert isinstance(a, PatchBatch) and torch.equal(ta, tb)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)  # uint8 → normalised on the device, or in the worker


@pytest.mark.parametrize('name,size,kwargs', [
    ('resnet18', (224, 224), {}),  # 7x7 map: an odd size, sampled every half pixel
    ('resnet18', (64, 128), {}),  # 2x4 map: x and y scaled each by its own map side
    ('test_vit', (32, 32), {}),  # tokens, the map of its last block after the final norm
    ('vit_tiny_patch16_224', (112, 112), dict(img_size=112)),
])
def test_a_whole_view_box_pools_to_the_global_average(name, size, kwargs):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=3, **kwargs).eval()
    x = torch.randn(2, 3, *size)
    final, fmap, layout = last_feature_map(model, x)
    assert layout == ('tokens' if 'vit' in name else 'NCHW')
    whole = torch.tensor([[[0., 0., size[1], size[0]]] * 2])
    bins = box_bins(fmap, whole, size)
    assert bins.shape == (2, fmap.shape[1], 2, 2)
    torch.testing.assert_close(bins.mean(dim=(2, 3)), fmap.mean(dim=(2, 3)), atol=1e-5, rtol=1e-5)
    # image i's box is read on image i's map (the two maps differ)
    assert not torch.allclose(bins[0], bins[1])


def test_box_sampling_ratio_samples_every_half_or_whole_map_pixel():
    assert [box_sampling_ratio(s, s) for s in (1, 2, 4, 7, 14)] == [1, 1, 2, 7, 7]
    assert box_sampling_ratio(4, 6) == 6  # lcm 12: both axes on a whole-pixel grid


def test_cnn_teacher_of_the_whole_view_is_the_query_embedding_and_gets_no_gradient():
    torch.manual_seed(0)
    module = create_contrastive_module(timm.create_model('resnet18', num_classes=3)).eval()
    x = torch.randn(2, 3, 64, 64)
    boxes = torch.tensor([[[0., 0., 64., 64.]] * 2, [[8., 8., 40., 56.]] * 2])
    patches = torch.randn(4, 3, 32, 32)
    logits, emb, teacher, student = module(x, patches, boxes)
    ref_logits, ref_emb = module(x)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(teacher[0], emb, atol=1e-5, rtol=1e-5)  # the head's own pooling of the bins
    assert not teacher.requires_grad and student.requires_grad
    assert teacher.shape == student.shape == (2, 2, 128)
    torch.testing.assert_close(student.norm(dim=-1), torch.ones(2, 2))
    torch.testing.assert_close(student[1], module(patches[2:])[1])  # patch-major rows: patch 1 of both images


def _patch_batch(batch=4, patches=2, size=32, patch=32):
    views = torch.randn(2 * batch, 3, size, size)
    boxes = torch.tensor([[4., 4., 28., 20.]]).repeat(patches, batch, 1)
    return PatchBatch(views, torch.randn(patches * batch, 3, patch, patch), boxes)


def test_dscl_task_with_pbsd_trains_every_parameter_but_the_classifier():
    torch.manual_seed(0)
    task = create_task('dscl', timm.create_model('test_convnext', num_classes=4), queue_size=16, verbose=False)
    assert task.pbsd_weight == 1.5
    target = torch.tensor([0, 1, 2, 1])
    first = task(_patch_batch(), target)
    assert float(first['loss_pbsd'].detach()) == pytest.approx(0.0, abs=1e-6)  # empty queue: the own key is the one candidate
    result = task(_patch_batch(), target)
    torch.testing.assert_close(result['loss'], result['loss_contrast'] + 1.5 * result['loss_pbsd'])
    assert float(result['loss_pbsd'].detach()) > 0
    result['loss'].backward()
    classifier = {id(p) for p in task.model.get_classifier().parameters()}
    for name, p in task.get_trainable_module().named_parameters():
        if id(p) in classifier:
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_dscl_task_input_must_match_its_pbsd_setting():
    torch.manual_seed(0)
    with_pbsd = create_task('dscl', timm.create_model('test_convnext', num_classes=4), queue_size=8, verbose=False)
    target = torch.tensor([0, 1, 2, 1])
    with pytest.raises(ValueError, match='takes a PatchBatch'):
        with_pbsd(torch.randn(8, 3, 32, 32), target)
    bad = _patch_batch()._replace(boxes=torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r'boxes must have shape \[L, B=4, 4\]'):
        with_pbsd(bad, target)
    plain = create_task('dscl', timm.create_model('test_convnext', num_classes=4), queue_size=8, verbose=False,
                        pbsd_weight=0)
    assert 'loss_pbsd' not in plain(torch.randn(8, 3, 32, 32), target)
    with pytest.raises(ValueError, match='pbsd_weight=0'):
        plain(_patch_batch(), target)
    with pytest.raises(ValueError, match='pbsd_weight=1.0: task paco takes no pbsd_weight'):
        create_task('paco', timm.create_model('test_convnext', num_classes=4), pbsd_weight=1.0, verbose=False)


@pytest.mark.parametrize('args,match', [
    ((0, 64, (0.05, 0.6)), '--pbsd-patches must be an int >= 1'),
    ((5, 0, (0.05, 0.6)), '--pbsd-patch-size must be an int >= 1'),
    ((5, 64, (0.0, 0.6)), '--pbsd-scale must be two area fractions'),
    ((5, 64, (0.5, 1.2)), '--pbsd-scale must be two area fractions'),
    ((5, 64, (0.6, 0.5)), '--pbsd-scale must be two area fractions'),
])
def test_bad_patch_arguments_name_the_flag(args, match):
    with pytest.raises(ValueError, match=match):
        check_patch_args(*args)


def test_mixed_precision_pbsd_embeddings_stay_finite():
    torch.manual_seed(0)
    task = create_task('dscl', timm.create_model('test_convnext', num_classes=4), queue_size=16, verbose=False)
    target = torch.tensor([0, 1, 2, 1])
    task(_patch_batch(), target)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        result = task(_patch_batch(), target)
    assert result['loss'].dtype == torch.float32 and bool(torch.isfinite(result['loss']))
    assert float(result['loss_pbsd'].detach()) > 0


def test_a_model_without_a_last_feature_map_is_refused_by_name():
    from argparse import Namespace

    from timm_paco.cli.train_checks import check_patch_model as check_cli
    from timm_paco.cli.train_views import plan_views
    from timm_paco.methods import get_method
    from timm_paco.cli.usage import UsageError
    from timm_paco.tasks.patch_teacher import check_patch_model
    with pytest.raises(ValueError, match='model Linear has no forward_intermediates'):
        check_patch_model(torch.nn.Linear(2, 2))
    args = Namespace(task='dscl', pbsd_weight=1.5, model='my_net', pbsd_patch_size=64)
    views = plan_views(Namespace(paco_views=None, pbsd_weight=1.5), get_method('dscl'))
    assert views.patches and views.num_views == 2
    with pytest.raises(UsageError, match=r'^--pbsd-weight 1.5: model my_net has no forward_intermediates'):
        check_cli(args, views, torch.nn.Linear(2, 2), (3, 32, 32))
    off = plan_views(Namespace(paco_views=None, pbsd_weight=0.0), get_method('dscl'))
    assert not off.patches
    check_cli(Namespace(**{**vars(args), 'pbsd_weight': 0.0}), off, torch.nn.Linear(2, 2), (3, 32, 32))  # PBSD off
