"""Fashion-MNIST mosaics: a real-image, long-tailed semantic segmentation set built from Debian's Fashion-MNIST.

Each canvas is a ``grid`` x ``grid`` layout of ``cell``-pixel cells; a cell holds one 28 x 28 garment at a random
offset inside it (or stays empty with probability ``empty_prob``), so garments never overlap. A garment's pixels
brighter than ``threshold`` (of 255) take label ``1 + its class``; every other pixel is background (0). Training
garments are drawn from a long tail over the ten classes (class c with probability ∝ ``imb_factor^(c/9)``, the
classification benchmarks' profile), test garments uniformly, from the test images. Everything follows from
``seed``. Written as ``<root>/<split>/images/<i>.png`` (RGB, the grey garment in all three channels) and
``<root>/<split>/masks/<i>.png`` (8-bit labels), with ``<root>/mosaics.json`` (the classes, the recipe, and
the training pixels per class).
"""
import json
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import numpy as np

from timm_paco.data.fashion_mnist_pool import fashion_mnist_root
from timm_paco.data.idx import read_idx

__all__ = ['FASHION_CLASSES', 'SEG_CLASSES', 'MosaicRecipe', 'garment_probabilities', 'compose_mosaic',
           'draw_mosaics', 'write_mosaics', 'read_mosaic_meta']

FASHION_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
                   'Ankle boot')
SEG_CLASSES = ('background',) + FASHION_CLASSES  # label 0 background, garment class c -> label c + 1
GARMENT = 28
META_FILE = 'mosaics.json'


@dataclass(frozen=True)
class MosaicRecipe:
    """How a mosaic set is drawn (stored in ``mosaics.json``)."""
    n_train: int = 400
    n_test: int = 200
    grid: int = 2
    cell: int = 32
    threshold: int = 50
    imb_factor: float = 0.01
    empty_prob: float = 0.1
    seed: int = 0

    def check(self):
        if self.cell < GARMENT:
            raise ValueError(f'cell must be >= {GARMENT} px (a garment), got {self.cell}')
        for name in ('n_train', 'n_test', 'grid'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if not 0 < self.imb_factor <= 1 or not 0 <= self.empty_prob < 1 or not 0 <= self.threshold < 255:
            raise ValueError(f'need 0 < imb_factor <= 1, 0 <= empty_prob < 1, 0 <= threshold < 255: got {self}')


def garment_probabilities(imb_factor: float, num_classes: int = 10) -> np.ndarray:
    """Class probabilities ∝ ``imb_factor^(c / (C - 1))`` (1: uniform)."""
    weights = imb_factor ** (np.arange(num_classes) / max(num_classes - 1, 1))
    return weights / weights.sum()


def compose_mosaic(garments: List[Tuple[np.ndarray, int, int, int]], size: int, threshold: int
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """(image [size, size, 3] uint8, mask [size, size] uint8) of ``garments``: (28 x 28 uint8 image, class,
    top, left) each, pasted at (top, left)."""
    image = np.zeros((size, size), np.uint8)
    mask = np.zeros((size, size), np.uint8)
    for pixels, cls, top, left in garments:
        image[top:top + GARMENT, left:left + GARMENT] = pixels
        mask[top:top + GARMENT, left:left + GARMENT][pixels > threshold] = cls + 1
    return np.repeat(image[:, :, None], 3, axis=2), mask


def draw_mosaics(images: np.ndarray, labels: np.ndarray, count: int, recipe: MosaicRecipe, probs: np.ndarray,
                 rng: np.random.Generator):
    """Yield ``count`` (image, mask) mosaics of garments from ``images [N, 28, 28]`` / ``labels [N]``, classes
    drawn with ``probs``."""
    by_class = [np.flatnonzero(labels == c) for c in range(len(probs))]
    size = recipe.grid * recipe.cell
    for _ in range(count):
        garments = []
        for row in range(recipe.grid):
            for col in range(recipe.grid):
                if rng.random() < recipe.empty_prob:
                    continue
                cls = int(rng.choice(len(probs), p=probs))
                index = int(rng.choice(by_class[cls]))
                top, left = (int(rng.integers(0, recipe.cell - GARMENT + 1)) for _ in range(2))
                garments.append((images[index], cls, row * recipe.cell + top, col * recipe.cell + left))
        yield compose_mosaic(garments, size, recipe.threshold)


def _write_split(root: str, split: str, mosaics) -> np.ndarray:
    """Write a split's PNGs; returns the pixels per label."""
    from PIL import Image
    counts = np.zeros(len(SEG_CLASSES), np.int64)
    for sub in ('images', 'masks'):
        os.makedirs(os.path.join(root, split, sub), exist_ok=True)
    for i, (image, mask) in enumerate(mosaics):
        Image.fromarray(image).save(os.path.join(root, split, 'images', f'{i:05d}.png'))
        Image.fromarray(mask).save(os.path.join(root, split, 'masks', f'{i:05d}.png'))
        counts += np.bincount(mask.ravel(), minlength=len(SEG_CLASSES))
    return counts


def write_mosaics(root: str, recipe: MosaicRecipe = MosaicRecipe(), source_root: str = None) -> Dict:
    """Build the train / test mosaics under ``root`` (reused when ``mosaics.json`` records the same recipe);
    returns the metadata. ``source_root``: a Fashion-MNIST root (default: prepared under ``root/fashion_mnist``)."""
    recipe.check()
    meta_path = os.path.join(root, META_FILE)
    if os.path.isfile(meta_path):
        meta = read_mosaic_meta(root)
        if meta['recipe'] == asdict(recipe):
            return meta
        raise ValueError(f'{root} holds mosaics of another recipe ({meta["recipe"]}); choose another folder or '
                         f'delete it')
    source = fashion_mnist_root(source_root or os.path.join(root, 'fashion_mnist'))
    raw = os.path.join(source, 'FashionMNIST', 'raw')
    rng = np.random.default_rng(recipe.seed)
    counts = {}
    for split, prefix, count, probs in (
            ('train', 'train', recipe.n_train, garment_probabilities(recipe.imb_factor)),
            ('test', 't10k', recipe.n_test, garment_probabilities(1.0))):
        images = read_idx(os.path.join(raw, f'{prefix}-images-idx3-ubyte'))
        labels = read_idx(os.path.join(raw, f'{prefix}-labels-idx1-ubyte'))
        counts[split] = _write_split(root, split, draw_mosaics(images, labels, count, recipe, probs, rng)).tolist()
    meta = dict(classes=list(SEG_CLASSES), recipe=asdict(recipe), pixels=counts)
    with open(meta_path + '.part', 'w') as f:
        json.dump(meta, f, indent=2)
    os.replace(meta_path + '.part', meta_path)  # written last: a set without it is incomplete
    return meta


def read_mosaic_meta(root: str) -> Dict:
    """``mosaics.json`` of a mosaic set."""
    with open(os.path.join(root, META_FILE)) as f:
        return json.load(f)
