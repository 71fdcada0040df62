"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package, laid out for torchvision.

torchvision's ``FashionMNIST(root)`` (and so timm's ``torch/fashion_mnist`` dataset) reads the unzipped IDX
files from ``root/FashionMNIST/raw/``. Debian ships the gzipped files in ``DEBIAN_FASHION_MNIST``.
"""
import gzip
import os
import shutil

DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
IDX_FILES = (
    'train-images-idx3-ubyte',
    'train-labels-idx1-ubyte',
    't10k-images-idx3-ubyte',
    't10k-labels-idx1-ubyte',
)


def debian_fashion_mnist_available(source: str = DEBIAN_FASHION_MNIST) -> bool:
    return all(os.path.isfile(os.path.join(source, f + '.gz')) for f in IDX_FILES)


def prepare_fashion_mnist(root: str, source: str = DEBIAN_FASHION_MNIST) -> str:
    """Unzip the Debian IDX files into ``root/FashionMNIST/raw`` (idempotent) and return ``root``.

    Raises FileNotFoundError naming the missing file when ``source`` lacks one.
    """
    raw = os.path.join(root, 'FashionMNIST', 'raw')
    os.makedirs(raw, exist_ok=True)
    for name in IDX_FILES:
        dst = os.path.join(raw, name)
        if os.path.isfile(dst):
            continue
        src = os.path.join(source, name + '.gz')
        if not os.path.isfile(src):
            raise FileNotFoundError(
                f'Fashion-MNIST file {src} not found: install Debian\'s dataset-fashion-mnist '
                f'(apt-get install dataset-fashion-mnist) or pass a source folder with the IDX .gz files')
        tmp = dst + '.part'
        with gzip.open(src, 'rb') as fin, open(tmp, 'wb') as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, dst)
    return root
