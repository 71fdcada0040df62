"""GPaCo's pixel-level PaCo loss for semantic segmentation (TPAMI 2023, the decode heads' PaCo term).

Per image, independently: K positions drawn uniformly without replacement from the h·w positions of the decode
head's output (ignored pixels included); each drawn pixel p has a normalised embedding z_p and its raw
segmentation logits l_p [C] as class scores. A pixel with a real class y_p (0 <= y_p < C, not ``ignore_index``) is
an anchor; every drawn pixel stays in its contrast set::

    log D_p = log( sum_c exp(l_pc) + gamma * sum_{q != p} exp(z_p . z_q / T) )
    L_p     = -(T / T_base) * sum_j w_pj (s_pj - log D_p) / sum_j w_pj

with weight beta on the true class's logit and alpha on every drawn q != p of class y_p (an anchor whose weights
sum to 0, e.g. beta = 0 and no same-class pixel, gives L_p = 0). The image loss is the mean over its anchors (0
without anchors); the batch loss is the sum of image losses over N, images without anchors included.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_num_classes, check_paco_weights, check_temperatures, compute_dtype

__all__ = ['PixelPaCoLoss', 'nearest_labels', 'sample_pixels']


def nearest_labels(labels: torch.Tensor, size) -> torch.Tensor:
    """Label maps ``[N, H, W]`` reduced (or enlarged) to ``size`` = (h, w) by nearest-neighbour sampling, as int64."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels.long()
    return F.interpolate(labels[:, None].float(), size=tuple(size), mode='nearest')[:, 0].long()


def sample_pixels(num_positions: int, num_pixels: Optional[int], generator: Optional[torch.Generator] = None,
                  device=None) -> torch.Tensor:
    """Indices of ``num_pixels`` positions drawn uniformly without replacement from ``num_positions``
    (``torch.randperm(num_positions, generator)[:K]``); every position, in order, when K is None or >= the count."""
    if num_pixels is None or num_pixels >= num_positions:
        return torch.arange(num_positions, device=device)
    where = generator.device if generator is not None else device
    return torch.randperm(num_positions, generator=generator, device=where)[:num_pixels].to(device)


class PixelPaCoLoss(nn.Module):
    """``loss(embed [N, D, h, w], seg_logit [N, C, h, w], labels [N, H, W], generator=None)`` -> scalar.

    ``embed`` is the projector's output (normalised here, in float32, or float64 if given); ``seg_logit`` the
    segmentation logits at the same size (raw: no temperature, no class prior); ``labels`` any size, reduced by nearest neighbour.
    ``num_pixels`` K per image (None: every pixel); ``generator`` makes the draw reproducible (images in order,
    ``sample_pixels`` each). Memory is O(K²) per image: images are processed one at a time.
    """

    def __init__(
            self,
            num_classes: int,
            alpha: float = 0.01,
            beta: float = 1.0,
            gamma: float = 1.0,
            temperature: float = 0.07,
            num_pixels: Optional[int] = 8192,
            ignore_index: int = 255,
            base_temperature: Optional[float] = None,
    ):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        if num_pixels is not None and (isinstance(num_pixels, bool) or not isinstance(num_pixels, int)
                                       or num_pixels < 1):
            raise ValueError(f'num_pixels must be an int >= 1 or None (every pixel), got {num_pixels!r}')
        self.alpha, self.beta, self.gamma = check_paco_weights(alpha, beta, gamma)
        self.temperature, self.base_temperature = check_temperatures(temperature, base_temperature)
        self.num_pixels = num_pixels
        self.ignore_index = int(ignore_index)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, '
                f'temperature={self.temperature}, num_pixels={self.num_pixels}, ignore_index={self.ignore_index}')

    def _check(self, embed: torch.Tensor, seg_logit: torch.Tensor, labels: torch.Tensor):
        for name, x in (('embed', embed), ('seg_logit', seg_logit)):
            if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
                got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f'{name} must be a floating-point tensor [N, *, h, w], got {got}')
        if embed.shape[0] != seg_logit.shape[0] or embed.shape[2:] != seg_logit.shape[2:]:
            raise ValueError(f'embed [N, D, h, w] and seg_logit [N, C, h, w] must share N, h and w: got '
                             f'{list(embed.shape)} and {list(seg_logit.shape)} (take both from the same decoder '
                             f'feature map)')
        if seg_logit.shape[1] != self.num_classes:
            raise ValueError(f'seg_logit must have num_classes = {self.num_classes} channels, got '
                             f'{list(seg_logit.shape)}')
        if not isinstance(labels, torch.Tensor) or labels.ndim != 3 or labels.is_floating_point():
            got = list(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f'labels must be an integer label map [N, H, W], got {got}')
        if labels.shape[0] != seg_logit.shape[0]:
            raise ValueError(f'labels batch ({labels.shape[0]}) must equal the logits batch ({seg_logit.shape[0]}): '
                             f'labels {list(labels.shape)}, seg_logit {list(seg_logit.shape)}')

    def image_loss(self, z: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of one image's drawn pixels: ``z [K, D]`` normalised, ``logits [K, C]``, ``y [K]`` (float32, or float64 if given)."""
        anchor = (y >= 0) & (y < self.num_classes) & (y != self.ignore_index)
        index = anchor.nonzero()[:, 0]
        if index.numel() == 0:
            return z.sum() * 0 + logits.sum() * 0  # keeps both inputs in the graph
        ya, la = y[index], logits[index]
        sim = z[index] @ z.t() / self.temperature  # [A, K]
        not_self = torch.ones_like(sim, dtype=torch.bool)
        not_self[torch.arange(index.numel(), device=z.device), index] = False
        terms = [la]
        if self.gamma > 0:
            terms.append((sim + math.log(self.gamma)).masked_fill(~not_self, -torch.inf))
        log_d = torch.logsumexp(torch.cat(terms, dim=1), dim=1)  # [A]
        positive = (ya[:, None] == y[None, :]) & not_self  # same class among the other drawn pixels
        weight_sum = self.beta + self.alpha * positive.sum(1).to(sim.dtype)  # not the default float32
        weighted = (self.beta * la.gather(1, ya[:, None])[:, 0]
                    + self.alpha * sim.masked_fill(~positive, 0.0).sum(1) - weight_sum * log_d)
        per_anchor = weighted / torch.where(weight_sum > 0, weight_sum, torch.ones_like(weight_sum))
        return -(self.temperature / self.base_temperature) * per_anchor.mean()

    def forward(self, embed: torch.Tensor, seg_logit: torch.Tensor, labels: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        self._check(embed, seg_logit, labels)
        n, _, h, w = seg_logit.shape
        labels = nearest_labels(labels, (h, w)).reshape(n, h * w)
        dtype = compute_dtype(embed, seg_logit)  # float32, or float64 if given
        with torch.autocast(device_type=embed.device.type, enabled=False):
            z = F.normalize(embed.to(dtype).flatten(2), dim=1)  # [N, D, h·w]
            logits = seg_logit.to(dtype).flatten(2)  # [N, C, h·w]
            total = embed.new_zeros((), dtype=dtype)
            for i in range(n):
                drawn = sample_pixels(h * w, self.num_pixels, generator, device=embed.device)
                total = total + self.image_loss(z[i][:, drawn].t(), logits[i][:, drawn].t(), labels[i][drawn])
        return total / n
