"""Multi-view transforms, stack_views and the view loader on real Fashion-MNIST images."""
import numpy as np
import pytest
import torch
import torch.utils.data
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.data.auto_augment import RandAugment
from timm.data.transforms_factory import transforms_imagenet_train
from torchvision import transforms

from timm_paco.data import (
    MultiViewTransform, create_paco_dataset, create_view_loader, create_view_transform, parse_view_recipe,
    stack_views,
)


@pytest.fixture(scope='module')
def fmnist_rgb(fmnist_root):
    return create_paco_dataset('torch/fashion_mnist', root=fmnist_root, split='train', input_img_mode='RGB')


def _types(compose):
    return [type(t) for t in compose.transforms]


def _applied(compose):
    """Transform types inside a Compose, looking into RandomApply."""
    out = []
    for t in compose.transforms:
        out += [type(x) for x in t.transforms] if isinstance(t, transforms.RandomApply) else [type(t)]
    return out


@pytest.mark.parametrize('use_prefetcher', [False, True])
def test_randcls_sim_two_augmentations_of_one_image(fmnist_rgb, use_prefetcher):
    tf = create_view_transform((3, 32, 32), 'randcls_sim', use_prefetcher=use_prefetcher)
    assert tf.num_views == 2
    rand_view, sim_view = tf.transforms
    # PaCo's randcls view: RandAugment and colour jitter, no grayscale / blur
    assert RandAugment in _types(rand_view) and transforms.ColorJitter in _applied(rand_view)
    assert transforms.RandomGrayscale not in _types(rand_view)
    ra = next(t for t in rand_view.transforms if isinstance(t, RandAugment))
    assert ra.num_layers == 2 and {op.magnitude for op in ra.ops} == {10}
    # SimCLR view: colour jitter, grayscale p=0.2, blur p=0.5, no RandAugment
    sim = _applied(sim_view)
    assert transforms.ColorJitter in sim and transforms.GaussianBlur in sim and RandAugment not in sim
    assert next(t for t in sim_view.transforms if isinstance(t, transforms.RandomGrayscale)).p == 0.2

    img, _ = fmnist_rgb[0]
    torch.manual_seed(0)
    views = tf(img)
    assert isinstance(views, tuple) and len(views) == 2
    for v in views:
        assert v.shape == (3, 32, 32)
        assert v.dtype == (torch.uint8 if use_prefetcher else torch.float32)
    assert not torch.equal(views[0], views[1])


def test_randclsstack_view_stacks_randaugment_grayscale_and_blur(fmnist_rgb):
    """PaCo's ResNeXt / GPaCo's 'randclsstack': RandAugment (--aa's n and m), colour jitter always, grayscale 0.2
    and blur 0.5 in one view."""
    tf = create_view_transform((3, 32, 32), 'randcls_randclsstack', rand_augment='rand-n3-m12-mstd0.5')
    plain, stack = tf.transforms
    assert transforms.RandomGrayscale not in _types(plain)
    applied = _applied(stack)
    assert {RandAugment, transforms.ColorJitter, transforms.GaussianBlur} <= set(applied)
    assert next(t for t in stack.transforms if isinstance(t, transforms.RandomGrayscale)).p == 0.2
    ra = next(t for t in stack.transforms if isinstance(t, RandAugment))
    assert ra.num_layers == 3 and {op.magnitude for op in ra.ops} == {12}
    assert all(v.shape == (3, 32, 32) for v in tf(fmnist_rgb[0][0]))


def test_multi_view_transform_applies_each_transform_to_the_same_image(fmnist_rgb):
    img, _ = fmnist_rgb[1]
    to_tensor = transforms.PILToTensor()
    flip = transforms.Compose([transforms.RandomHorizontalFlip(p=1.0), to_tensor])
    v0, v1, v2 = MultiViewTransform([to_tensor, flip, to_tensor])(img)
    assert torch.equal(v0, torch.from_numpy(np.array(img)).permute(2, 0, 1))
    assert torch.equal(v1, v0.flip(-1))
    assert torch.equal(v2, v0)


def test_view_recipes():
    assert create_view_transform(16, 'sim_sim').num_views == 2
    assert create_view_transform(16, 'rand_rand').num_views == 2
    assert create_view_transform(16, 'randcls_sim_sim').num_views == 3
    assert create_view_transform(16, 'single').num_views == 1
    unknown = r"views: unknown view recipe 'randcls_mocov2' \(unknown view\(s\) \['mocov2'\]"
    with pytest.raises(ValueError, match=unknown):
        create_view_transform(16, 'randcls_mocov2')
    with pytest.raises(ValueError, match=r"--paco-views: unknown view recipe \(\); expected view names"):
        parse_view_recipe((), arg_name='--paco-views')


def test_stack_views_shapes_and_errors():
    b = 3
    v0, v1 = torch.randn(b, 3, 4, 4), torch.randn(b, 3, 4, 4)
    target = torch.arange(b)
    x, t = stack_views([v0, v1], target, 2)
    assert torch.equal(x, torch.cat([v0, v1])) and torch.equal(t, target)
    x, t = stack_views(torch.cat([v0, v1]), target.repeat(2), 2)
    assert x.shape == (2 * b, 3, 4, 4) and torch.equal(t, target)
    x, t = stack_views(torch.cat([v0, v1]), target, 2)
    assert torch.equal(t, target)
    with pytest.raises(ValueError, match='num_views=3'):
        stack_views([v0, v1], target, 3)
    with pytest.raises(ValueError, match='same shape'):
        stack_views([v0, v1[:2]], target, 2)
    with pytest.raises(ValueError, match='multiple of num_views'):
        stack_views(torch.randn(5, 3), target, 2)
    with pytest.raises(ValueError, match='target'):
        stack_views(torch.cat([v0, v1]), torch.arange(4), 2)


def _deterministic_views(use_prefetcher):
    """View 0: the image as is; view 1: the image flipped (full-image crop, no colour changes)."""
    kw = dict(img_size=28, scale=(1., 1.), ratio=(1., 1.), color_jitter=None, interpolation='bilinear',
              use_prefetcher=use_prefetcher)
    return MultiViewTransform([transforms_imagenet_train(hflip=0., **kw), transforms_imagenet_train(hflip=1., **kw)])


@pytest.mark.parametrize('use_prefetcher,num_workers', [(False, 0), (True, 0), (True, 1)])
def test_view_loader_yields_view_major_batches(fmnist_root, use_prefetcher, num_workers):
    base = create_paco_dataset('torch/fashion_mnist', root=fmnist_root, split='train')
    indices = list(range(100, 112))
    dataset = torch.utils.data.Subset(base, indices)
    raw = base.dataset.data[indices]  # [12, 28, 28] uint8 originals
    labels = base.dataset.targets[indices]

    batch_size = 4
    loader = create_view_loader(
        dataset, _deterministic_views(use_prefetcher), batch_size=batch_size, is_training=True,
        use_prefetcher=use_prefetcher, device=torch.device('cpu'), num_workers=num_workers,
        persistent_workers=False)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    seen = []
    for input, target in loader:
        assert input.shape == (2 * batch_size, 3, 28, 28) and input.dtype == torch.float32
        assert target.shape == (batch_size,)
        pixels = (input * std + mean) * 255  # both paths normalise with ImageNet mean / std
        assert torch.allclose(pixels[:, 0], pixels[:, 2], atol=1e-3)  # grey image converted to RGB
        view0, view1 = pixels[:batch_size, 0], pixels[batch_size:, 0]
        for i in range(batch_size):
            match = (raw.float() - view0[i]).abs().amax(dim=(1, 2)) < 0.51
            assert match.sum() == 1
            k = int(match.nonzero())
            assert target[i] == labels[k]
            assert torch.allclose(view1[i], raw[k].flip(-1).float(), atol=0.51)  # same sample, other view
            seen.append(k)
    assert sorted(seen) == list(range(12))


def test_view_loader_with_paco_recipe(fmnist_root):
    base = create_paco_dataset('torch/fashion_mnist', root=fmnist_root, split='train')
    dataset = torch.utils.data.Subset(base, list(range(6)))
    for use_prefetcher in (False, True):
        tf = create_view_transform((3, 32, 32), 'randcls_sim', use_prefetcher=use_prefetcher)
        loader = create_view_loader(dataset, tf, batch_size=3, use_prefetcher=use_prefetcher,
                                    device=torch.device('cpu'), num_workers=0, re_prob=0.25 if use_prefetcher else 0.)
        batches = list(loader)
        assert len(batches) == 2
        for input, target in batches:
            assert input.shape == (6, 3, 32, 32) and input.dtype == torch.float32 and target.shape == (3,)


def test_color_jitter_prob_reaches_every_view():
    views = create_view_transform((3, 32, 32), 'randcls_sim', color_jitter_prob=0.3).transforms
    for view in views:
        applied = [t for t in view.transforms if isinstance(t, transforms.RandomApply)
                   and any(isinstance(inner, transforms.ColorJitter) for inner in t.transforms)]
        assert [t.p for t in applied] == [0.3]


def test_sim_view_blur_needs_twelve_pixels():
    with pytest.raises(ValueError, match=r'input_size \(3, 8, 8\): the sim view.s Gaussian blur .* at least 12 pixels'):
        create_view_transform((3, 8, 8), 'randcls_sim')
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert('RGB')
    views = create_view_transform((3, 8, 8), 'randcls_sim', gaussian_blur_prob=0.)(image)  # no blur: fine
    assert [tuple(v.shape) for v in views] == [(3, 8, 8)] * 2
    blurred = create_view_transform((3, 12, 12), 'sim_sim', gaussian_blur_prob=1.)(image.resize((12, 12)))
    assert [tuple(v.shape) for v in blurred] == [(3, 12, 12)] * 2


def test_plain_loader_rejects_uint8_views_and_erasing(fmnist_root):
    base = create_paco_dataset('torch/fashion_mnist', root=fmnist_root, split='train')
    dataset = torch.utils.data.Subset(base, list(range(4)))
    tf = create_view_transform((3, 28, 28), 'sim_sim', use_prefetcher=True)
    loader = create_view_loader(dataset, tf, batch_size=2, use_prefetcher=False, num_workers=0)
    with pytest.raises(ValueError, match='uint8 images reach a loader without the prefetcher'):
        next(iter(loader))
    with pytest.raises(ValueError, match=r're_prob=0.25: the loader erases only with the prefetcher'):
        create_view_loader(dataset, tf, batch_size=2, use_prefetcher=False, num_workers=0, re_prob=0.25)


def test_prefetcher_loader_rejects_float_views(fmnist_root):
    base = create_paco_dataset('torch/fashion_mnist', root=fmnist_root, split='train')
    dataset = torch.utils.data.Subset(base, list(range(4)))
    tf = create_view_transform((3, 28, 28), 'sim_sim', use_prefetcher=False)
    loader = create_view_loader(dataset, tf, batch_size=2, use_prefetcher=True, device=torch.device('cpu'),
                                num_workers=0)
    with pytest.raises(ValueError, match='use_prefetcher=True'):
        next(iter(loader))
