"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package, laid out for torchvision.

torchvision's ``FashionMNIST(root)`` (and so timm's ``torch/fashion_mnist`` dataset) reads the unzipped IDX
files from ``root/FashionMNIST/raw/``. Debian ships the gzipped files in ``DEBIAN_FASHION_MNIST``.
"""
import gzip
import os
import shutil
import subprocess
from typing import Optional

DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
IDX_FILES = (
    'train-images-idx3-ubyte',
    'train-labels-idx1-ubyte',
    't10k-images-idx3-ubyte',
    't10k-labels-idx1-ubyte',
)


SOURCE_ENV = 'FASHION_MNIST_DIR'  # another folder of the IDX .gz files (e.g. carried to a machine without apt)
APT_INSTALL = 'apt-get install dataset-fashion-mnist'


def fashion_mnist_source() -> str:
    """The folder of the IDX .gz files: ``$FASHION_MNIST_DIR``, else Debian's."""
    return os.environ.get(SOURCE_ENV) or DEBIAN_FASHION_MNIST


def install_debian_fashion_mnist() -> Optional[str]:
    """Install Debian's ``dataset-fashion-mnist`` with apt-get (through sudo when not root); returns None when it
    ran, else why it could not (no apt-get, no sudo, apt-get failed)."""
    if shutil.which('apt-get') is None:
        return 'this machine has no apt-get'
    command = ['apt-get', 'install', '-y', '-q', 'dataset-fashion-mnist']
    if os.geteuid() != 0:
        if shutil.which('sudo') is None:
            return 'not root and no sudo'
        command = ['sudo', '-n'] + command  # -n: fail instead of prompting when a password is needed
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    if subprocess.run(command, env=env).returncode != 0:
        return f'{" ".join(command)} failed (after apt-get update, or as root, it may work)'
    return None


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
