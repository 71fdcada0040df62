"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package, laid out for torchvision.

torchvision's ``FashionMNIST(root)`` (and so timm's ``torch/fashion_mnist`` dataset) reads the unzipped IDX
files from ``root/FashionMNIST/raw/``. Debian ships the gzipped files in ``DEBIAN_FASHION_MNIST``.
"""
import gzip
import os
import shutil
import subprocess

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


def install_debian_fashion_mnist() -> None:
    """Install Debian's ``dataset-fashion-mnist`` with apt-get (through sudo when not root). Raises RuntimeError
    naming the command when apt-get is missing or fails."""
    if shutil.which('apt-get') is None:
        raise RuntimeError(f'--install-data: this machine has no apt-get; download the Fashion-MNIST IDX .gz files '
                           f'into a folder and set {SOURCE_ENV} to it')
    command = ['apt-get', 'install', '-y', '-q', 'dataset-fashion-mnist']
    if os.geteuid() != 0:
        if shutil.which('sudo') is None:
            raise RuntimeError(f'--install-data: run as root (or with sudo): {APT_INSTALL}')
        command = ['sudo'] + command
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    if subprocess.run(command, env=env).returncode != 0:
        raise RuntimeError(f'--install-data: {" ".join(command)} failed; run it yourself (after apt-get update)')


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
