"""Colour-mode conversion for datasets that return PIL images in their own mode.

torchvision's MNIST family returns PIL ``'L'`` images; timm's own datasets convert to ``input_img_mode``
themselves, torchvision's do not. ``ImageModeDataset`` converts each image before the transform, so a
3-channel model can train on Fashion-MNIST with the usual transforms.
"""
from typing import List

import torch.utils.data
from PIL import Image

from .class_counts import dataset_targets

__all__ = ['ImageModeDataset']


class ImageModeDataset(torch.utils.data.Dataset):
    """Wrap ``dataset`` (its own ``transform`` left ``None``): PIL images are converted to ``img_mode``, then
    ``self.transform`` is applied. ``transform`` is assignable as on any timm / torchvision dataset."""

    def __init__(self, dataset: torch.utils.data.Dataset, img_mode: str = 'RGB', transform=None):
        self.dataset = dataset
        self.img_mode = img_mode
        self.transform = transform if transform is not None else getattr(dataset, 'transform', None)
        if hasattr(dataset, 'transform'):
            dataset.transform = None

    def __getitem__(self, index):
        img, target = self.dataset[index]
        if isinstance(img, Image.Image) and img.mode != self.img_mode:
            img = img.convert(self.img_mode)
        if self.transform is not None:
            img = self.transform(img)
        return img, target

    def __len__(self):
        return len(self.dataset)

    @property
    def targets(self) -> List[int]:
        return dataset_targets(self.dataset)

    @property
    def classes(self):
        return getattr(self.dataset, 'classes', None)
