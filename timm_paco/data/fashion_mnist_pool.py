"""Fashion-MNIST roots for the quick start and the benchmarks: the source images (Debian's package, else
torchvision's download) and balanced pools of the first ``n`` images of each class, written back as IDX files so
that torchvision (timm's ``torch/fashion_mnist``) reads them."""
import logging
import os
from typing import List, Optional

import numpy as np

from timm_paco.data.fashion_mnist import (
    APT_INSTALL, DEBIAN_FASHION_MNIST, IDX_FILES, SOURCE_ENV, debian_fashion_mnist_available, fashion_mnist_source,
    install_debian_fashion_mnist, prepare_fashion_mnist,
)
from timm_paco.data.idx import read_idx, write_idx

__all__ = ['fashion_mnist_root', 'cap_per_class']

_logger = logging.getLogger(__name__)


def fashion_mnist_root(root: str, download: bool = True, install: bool = False) -> str:
    """A torchvision Fashion-MNIST root under ``root``: the IDX files of ``fashion_mnist_source()`` (Debian's
    package; ``install`` installs it with apt-get first), else torchvision's download (the only network access).
    Returns ``root``; raises RuntimeError naming the install command when none of these works."""
    source = fashion_mnist_source()
    debian = source == DEBIAN_FASHION_MNIST
    if not debian_fashion_mnist_available(source) and install and debian:
        problem = install_debian_fashion_mnist()
        if problem:  # torchvision's download may still work
            _logger.warning(f'--install-data: {problem}; trying the download instead')
    if debian_fashion_mnist_available(source):
        return prepare_fashion_mnist(root, source=source)
    missing = f'Fashion-MNIST: no IDX files in {source}' + (
        ' (Debian\'s dataset-fashion-mnist is not installed)' if debian else f' (from {SOURCE_ENV})')
    fix = f'install Debian\'s package ({APT_INSTALL}, or --install-data), or set {SOURCE_ENV} to a folder of the ' \
          f'IDX .gz files'
    if not download:
        raise RuntimeError(f'{missing} and download is off; {fix}')
    from torchvision.datasets import FashionMNIST
    try:
        for train in (True, False):
            FashionMNIST(root, train=train, download=True)
    except (OSError, RuntimeError) as e:  # no network: URLError is an OSError
        raise RuntimeError(f'{missing} and the download failed ({" ".join(str(e).split())}); {fix}') from None
    return root


def _per_class(labels: np.ndarray, n: Optional[int], start: int = 0) -> np.ndarray:
    """Indices (file order) of samples ``start .. start + n - 1`` of each class; all samples when ``n`` is None."""
    if n is None:
        return np.arange(labels.shape[0])
    picks = []
    for c in np.unique(labels):
        of_class = np.flatnonzero(labels == c)
        if of_class.shape[0] < start + n:
            raise ValueError(f'class {c} has {of_class.shape[0]} images, fewer than the {start + n} asked for')
        picks.append(of_class[start:start + n])
    return np.sort(np.concatenate(picks))


def cap_per_class(src_root: str, dst_root: str, n_max: int, n_test: Optional[int] = None,
                  n_val: Optional[int] = None) -> List[int]:
    """Write a torchvision Fashion-MNIST root keeping the first ``n_max`` training images of each class (file
    order) and the whole test set (the first ``n_test`` of each class when given). Returns the training images
    per class written.

    ``n_val`` writes a validation root instead: its test files hold the ``n_val`` training images of each class
    that follow the first ``n_max`` (balanced, disjoint from every training image), for model selection.
    """
    if n_max < 1:
        raise ValueError(f'--n-max: expected a positive number of training images per class, got {n_max}')
    if n_test is not None and n_test < 1:
        raise ValueError(f'n_test: expected a positive number of test images per class or None, got {n_test}')
    if n_val is not None and (n_val < 1 or n_test is not None):
        raise ValueError(f'n_val: expected a positive number of validation images per class (without n_test), '
                         f'got {n_val}')
    src = os.path.join(src_root, 'FashionMNIST', 'raw')
    dst = os.path.join(dst_root, 'FashionMNIST', 'raw')
    for name in IDX_FILES:
        if not os.path.isfile(os.path.join(src, name)):
            raise FileNotFoundError(f'Fashion-MNIST file {os.path.join(src, name)} not found')
    os.makedirs(dst, exist_ok=True)

    def read(prefix):
        images = read_idx(os.path.join(src, f'{prefix}-images-idx3-ubyte'))
        labels = read_idx(os.path.join(src, f'{prefix}-labels-idx1-ubyte'))
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f'{src}: {images.shape[0]} {prefix} images but {labels.shape[0]} labels')
        return images, labels

    train_images, train_labels = read('train')
    keep = _per_class(train_labels, n_max)
    if n_val is None:
        test_images, test_labels = read('t10k')
        test_keep = _per_class(test_labels, n_test)
    else:
        test_images, test_labels = train_images, train_labels
        try:
            test_keep = _per_class(train_labels, n_val, start=n_max)
        except ValueError as e:
            raise ValueError(f'--n-val {n_val}: {e}') from None
    for prefix, images, labels, rows in (('train', train_images, train_labels, keep),
                                         ('t10k', test_images, test_labels, test_keep)):
        write_idx(os.path.join(dst, f'{prefix}-images-idx3-ubyte'), images[rows])
        write_idx(os.path.join(dst, f'{prefix}-labels-idx1-ubyte'), labels[rows])
    return np.bincount(train_labels[keep]).tolist()
