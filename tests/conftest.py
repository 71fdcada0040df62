import os

import pytest
import torchvision

from timm_paco.data.fashion_mnist import DEBIAN_FASHION_MNIST, prepare_fashion_mnist

FOLDER_CLASSES = 4


@pytest.fixture(scope='session')
def fmnist_root(tmp_path_factory):
    """A torchvision-style root holding the real Fashion-MNIST IDX files.

    Source: Debian's package, or the folder of IDX .gz files named by ``FASHION_MNIST_DIR`` (a GPU machine
    without the package gets the files carried to it).
    """
    source = os.environ.get('FASHION_MNIST_DIR', DEBIAN_FASHION_MNIST)
    return prepare_fashion_mnist(str(tmp_path_factory.mktemp('fmnist')), source=source)


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory, fmnist_root):
    """Fashion-MNIST PNGs for classes 0-3: 4 training and 2 validation images each, timm folder layout."""
    root = tmp_path_factory.mktemp('fmnist_folder')
    dataset = torchvision.datasets.FashionMNIST(fmnist_root, train=True)
    for split, per_class, start in (('train', 4, 0), ('validation', 2, 5000)):
        seen = [0] * FOLDER_CLASSES
        index = start
        while sum(seen) < per_class * FOLDER_CLASSES:
            img, label = dataset[index]
            if label < FOLDER_CLASSES and seen[label] < per_class:
                seen[label] += 1
                os.makedirs(root / split / str(label), exist_ok=True)
                img.save(root / split / str(label) / f'{index}.png')
            index += 1
    return str(root)
