"""Colour-mode conversion for datasets that return PIL images in their own mode.

torchvision's MNIST family returns PIL ``'L'`` images; timm's own datasets convert to ``input_img_mode``
themselves, torchvision's do not. ``ImageModeDataset`` converts each image before the transform, so a
3-channel model can train on Fashion-MNIST with the usual transforms.
"""
from typing import Any, Dict, List

import torch.utils.data
from PIL import Image
from timm.data.loader import adapt_to_chs

from .class_counts import dataset_targets

__all__ = ['ImageModeDataset', 'match_model_channels']


def match_model_channels(data_config: Dict[str, Any], in_chans: int) -> Dict[str, Any]:
    """``data_config`` (timm's ``resolve_data_config``) for a model with ``in_chans`` input channels.

    timm keeps the pretrained cfg's 3-channel ``input_size`` / mean / std for a model built with ``--in-chans 1``
    (unless ``--img-size`` / ``--mean`` / ``--std`` are given); the images would then be loaded as RGB and
    normalised with three values. The model's channel count wins: ``input_size[0]`` is set to it and mean / std
    of another length are averaged to it (timm's ``adapt_to_chs``).
    """
    config = dict(data_config)
    config['input_size'] = (in_chans, *config['input_size'][1:])
    for key in ('mean', 'std'):
        config[key] = tuple(adapt_to_chs(config[key], in_chans))
    return config


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
