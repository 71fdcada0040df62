import pytest

from timm_paco.data.fashion_mnist import prepare_fashion_mnist


@pytest.fixture(scope='session')
def fmnist_root(tmp_path_factory):
    """A torchvision-style root holding the real Fashion-MNIST IDX files (from Debian's package)."""
    return prepare_fashion_mnist(str(tmp_path_factory.mktemp('fmnist')))
