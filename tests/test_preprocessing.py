"""Every registered name's preprocessing equals the authors' evaluation transform: timm's eval transform built
from each pretrained tag's cfg (what validate.py, timm's data config, the exported config.json and publish-zoo
use) against torchvision transforms written from the authors' scripts, on a real image."""
import pytest
import timm
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image
from timm.data import create_transform, resolve_data_config

from timm_paco.models import registered_names
from timm_paco.models.zoo import ZOO

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
INAT = ((0.466, 0.471, 0.380), (0.195, 0.194, 0.192))  # paco_lt.py, --dataset inat (PaCo and GPaCo)
CIFAR = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # paco_cifar.py, CIFAR-10 and -100 alike

# The authors' evaluation transforms, per dataset tag: (resize, crop, interpolation, (mean, std)).
# ResNets: PaCo/LT/paco_lt.py, paco_fp16_places.py, Full-ImageNet/paco_imagenet.py and their GPaCo copies:
# Resize(256) (PIL bilinear), CenterCrop(224). MAE ViTs: util/datasets.py build_transform, crop 224/256, bicubic.
RESNET_EVAL = {
    'in1k': (256, 224, T.InterpolationMode.BILINEAR, IMAGENET),
    'imagenet_lt': (256, 224, T.InterpolationMode.BILINEAR, IMAGENET),
    'places_lt': (256, 224, T.InterpolationMode.BILINEAR, IMAGENET),
    'inat2018': (256, 224, T.InterpolationMode.BILINEAR, INAT),
}
VIT_EVAL = {'in1k': (256, 224, T.InterpolationMode.BICUBIC, IMAGENET)}

TAGS = [tag for name in registered_names() for tag in timm.list_pretrained(name + '.*')]
CIFAR_NAMES = [n for n in registered_names() if n.endswith(('resnet32', 'resnet32_cifar'))]


def _authors_transform(resize, crop, interpolation, norm):
    return T.Compose([T.Resize(resize, interpolation=interpolation), T.CenterCrop(crop), T.ToTensor(),
                      T.Normalize(*norm)])


def _timm_transform(name):
    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    return create_transform(**resolve_data_config(pretrained_cfg=cfg), is_training=False)


@pytest.fixture(scope='module')
def photo(fmnist_root):
    """A real image, enlarged to an ImageNet-like non-square size so that resize and crop both act."""
    img, _ = torchvision.datasets.FashionMNIST(fmnist_root, train=False)[7]
    return img.convert('RGB').resize((333, 290), Image.BILINEAR)


def test_every_pretrained_tag_is_checked():
    assert sorted(TAGS) == sorted(ZOO) and all(t.split('.')[1] in RESNET_EVAL for t in TAGS)  # the 18 released


@pytest.mark.parametrize('tag', TAGS)
def test_tag_preprocessing_is_the_authors_evaluation_transform(tag, photo):
    name, dataset = tag.split('.')
    spec = (VIT_EVAL if name.startswith('vit_') else RESNET_EVAL)[dataset]
    expected = _authors_transform(*spec)(photo)
    got = _timm_transform(tag)(photo)
    assert got.shape == expected.shape == (3, 224, 224)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize('name', CIFAR_NAMES)
def test_cifar_preprocessing_is_the_authors(name, photo):
    small = photo.resize((32, 32), Image.BILINEAR)
    expected = T.Compose([T.ToTensor(), T.Normalize(*CIFAR)])(small)
    torch.testing.assert_close(_timm_transform(name)(small), expected, rtol=0, atol=1e-6)
