"""PBSD's teacher: a box's pooled feature on the query view's last feature map (DSCL, Xuan & Zhang, AAAI 2024).

The last feature map comes from timm's ``forward_intermediates`` (NCHW for CNNs and ViTs alike; ViT tokens
after the final norm, prefix tokens dropped). Boxes ``[L, B, 4]`` in view pixels ``(x1, y1, x2, y2)`` are mapped
to the map by its own size (``w / W``, ``h / H``: never a fixed stride) and pooled by RoIAlign into 2×2 bins
(``torchvision.ops.roi_align``, aligned pixel centres). The bins then take the model's own pooling path:

* a model whose final features are a map (CNNs, Swin's NHWC): its ``forward_head(bins, pre_logits=True)``
  (global pooling, any head norm), so the whole view's box gives exactly the query's pre-logits;
* a token model (ViT): the mean of the bins, i.e. the average of the box's normalised patch tokens.

The sampling grid is regular with a spacing of 1 or 1/2 map pixels over a whole-view box, so that box averages
every map position with the same weight: it pools to the map's global average.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
from torchvision.ops import roi_align

__all__ = ['last_feature_map', 'box_bins', 'pool_bins', 'box_sampling_ratio', 'check_patch_model']

BINS = 2  # RoIAlign output bins per side, as the paper's


def check_patch_model(model: nn.Module, name: Optional[str] = None, weight: Optional[float] = None,
                      input_size: Optional[Tuple[int, int, int]] = None) -> None:
    """ValueError unless ``model`` gives a last feature map through timm's ``forward_intermediates`` (with
    ``input_size`` (C, H, W): tried on one zero image, in eval mode and without gradients); the message names the
    model as ``name`` (default its class) and the ``--pbsd-weight`` given."""
    flag = '--pbsd-weight' + ('' if weight is None else f' {weight}')
    name = name or type(model).__name__
    if not callable(getattr(model, 'forward_intermediates', None)):
        raise ValueError(f'{flag}: model {name} has no forward_intermediates, so PBSD has no last feature map to '
                         f'pool its boxes on; use a timm model that has it or --pbsd-weight 0')
    if input_size is None:
        return
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_size, device=param.device if param is not None else None,
                    dtype=param.dtype if param is not None else None)
    try:
        with torch.no_grad():
            model.eval()
            final, maps = model.forward_intermediates(x, indices=1, norm=True, output_fmt='NCHW')
    finally:
        model.train(was_training)
    for what, value in (('final features', final), ('last intermediate', maps[-1] if maps else None)):
        if not torch.is_tensor(value):
            raise ValueError(f'{flag}: model {name} gives its {what} as a {type(value).__name__}, not one tensor, '
                             f'so PBSD has no last feature map to pool its boxes on; use --pbsd-weight 0')
    if maps[-1].ndim != 4:
        raise ValueError(f'{flag}: model {name} gives no NCHW last feature map (got {list(maps[-1].shape)}); use '
                         f'--pbsd-weight 0')


def last_feature_map(model: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, str]:
    """``(final features as forward_features gives them, last feature map [N, C, h, w], the final features'
    layout: 'NCHW', 'NHWC' or 'tokens')`` in one pass. A model whose final features are a map pools its boxes
    on that map (what its head pools); a token model on its last intermediate."""
    check_patch_model(model)
    final, maps = model.forward_intermediates(x, indices=1, norm=True, output_fmt='NCHW')
    last = maps[-1]
    if last.ndim != 4:
        raise ValueError(f'--pbsd-weight: model {type(model).__name__} gives no NCHW last feature map '
                         f'(got {list(last.shape)}); use --pbsd-weight 0')
    if final.ndim == 4 and final.shape[-2:] == last.shape[-2:]:
        return final, final, 'NCHW'
    if final.ndim == 4 and final.shape[1:3] == last.shape[-2:]:
        return final, final.permute(0, 3, 1, 2), 'NHWC'
    return final, last, 'tokens'


def box_sampling_ratio(height: int, width: int) -> int:
    """RoIAlign samples per bin side: a whole-view box is then sampled every 1 (or 1/2) map pixels on both
    axes, which weighs every position equally."""
    common = height * width // math.gcd(height, width)
    return common // BINS if common % BINS == 0 else common


def box_bins(fmap: torch.Tensor, boxes: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    """``fmap [B, C, h, w]``, ``boxes [L, B, 4]`` in pixels of an ``image_size (H, W)`` view ->
    ``[L·B, C, 2, 2]`` (row ``j·B + i``: box j of image i), float32."""
    patches, batch = boxes.shape[:2]
    height, width = fmap.shape[-2:]
    scale = boxes.new_tensor([width / image_size[1], height / image_size[0]]).repeat(2)
    index = torch.arange(batch, device=boxes.device, dtype=boxes.dtype).repeat(patches)
    rois = torch.cat([index[:, None], boxes.reshape(-1, 4).float() * scale], dim=1)
    return roi_align(fmap.float(), rois, (BINS, BINS), spatial_scale=1.0,
                     sampling_ratio=box_sampling_ratio(height, width), aligned=True)


def pool_bins(model: nn.Module, bins: torch.Tensor, layout: str) -> torch.Tensor:
    """The bins ``[N, C, 2, 2]`` through the model's pooling path for its ``layout`` (``last_feature_map``) ->
    ``[N, F]``: its head on a map, the bins' mean for tokens."""
    if layout == 'NCHW':
        return model.forward_head(bins, pre_logits=True)
    if layout == 'NHWC':
        return model.forward_head(bins.permute(0, 2, 3, 1), pre_logits=True)
    return bins.mean(dim=(2, 3))
