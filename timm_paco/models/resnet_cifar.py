""" CIFAR ResNet (He et al. 2016, sec. 4.2), the ResNet-32 backbone of the CIFAR-LT papers.

A 3x3 16-channel stem at full resolution, then 3 stages of basic blocks with 16/32/64 channels and
strides 1/2/2, global average pooling and a linear classifier. Downsampling shortcuts are the
parameter-free "option A" (stride-2 subsample, zero-pad the new channels), so ResNet-32 has
0.46M parameters. Module names (``conv1``, ``bn1``, ``layer1..3``, ``fc``) match the CIFAR-LT seeds'
checkpoints. Registered as ``resnet32_cifar`` (and, with the PaCo CIFAR recipe, ``paco_resnet32``).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import create_classifier
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq

from .checkpoint_filter import checkpoint_filter_fn

__all__ = ['ResNetCifar', 'CIFAR_MEAN', 'CIFAR_STD', 'create_resnet_cifar']

# The papers' CIFAR normalisation (PaCo's and GPaCo's paco_cifar.py, training and evaluation, CIFAR-10 and -100
# alike): CIFAR-10's channel statistics.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


class PadShortcut(nn.Module):
    """Option-A shortcut: stride-2 subsample ``[N, C, H, W] -> [N, C + 2p, H/2, W/2]``, zero channels."""

    def __init__(self, pad_channels: int):
        super().__init__()
        self.pad_channels = pad_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad_channels, self.pad_channels))


class BasicBlockCifar(nn.Module):
    """Two 3x3 conv-BN layers with an identity / option-A shortcut."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(out_chs, **dd)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, stride=1, padding=1, bias=False, **dd)
        self.bn2 = nn.BatchNorm2d(out_chs, **dd)
        if stride != 1 or in_chs != out_chs:
            if stride != 2 or out_chs != 2 * in_chs:
                raise ValueError(f'option-A shortcut needs stride 2 and doubled channels, got '
                                 f'stride={stride}, {in_chs}->{out_chs}')
            self.shortcut = PadShortcut(out_chs // 4)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _stage(in_chs: int, width: int, depth: int, stride: int, dd: Dict) -> nn.Sequential:
    return nn.Sequential(*[
        BasicBlockCifar(in_chs if j == 0 else width, width, stride if j == 0 else 1, **dd) for j in range(depth)])


_STAGES = ('layer1', 'layer2', 'layer3')


class ResNetCifar(nn.Module):
    """ CIFAR ResNet with ``6n+2`` layers: a stem and three stages (``layer1..3``, strides 1/2/2).

    Args:
        layers: Blocks per stage, ``(5, 5, 5)`` for ResNet-32.
        widths: Channels per stage.
        num_classes: Classifier outputs (0 for no classifier).
        in_chans: Input channels.
        global_pool: timm pooling type.
        drop_rate: Dropout before the classifier.
        device, dtype: Where and in what type the parameters are made (timm's factory arguments).

    Feature taps (``feature_info``, ``forward_intermediates`` indices): 0 the stem (``act1``), 1-3 the stages.
    """

    def __init__(
            self,
            layers: Sequence[int] = (5, 5, 5),
            widths: Sequence[int] = (16, 32, 64),
            num_classes: int = 100,
            in_chans: int = 3,
            global_pool: str = 'avg',
            drop_rate: float = 0.,
            device=None,
            dtype=None,
    ):
        super().__init__()
        if len(layers) != len(_STAGES) or len(widths) != len(_STAGES):
            raise ValueError(f'layers {tuple(layers)} and widths {tuple(widths)} must give {len(_STAGES)} stages')
        dd = dict(device=device, dtype=dtype)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, stride=1, padding=1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(widths[0], **dd)
        self.act1 = nn.ReLU(inplace=True)
        self.feature_info = [dict(num_chs=widths[0], reduction=1, module='act1')]
        self.layer1 = _stage(widths[0], widths[0], layers[0], 1, dd)
        self.layer2 = _stage(widths[0], widths[1], layers[1], 2, dd)
        self.layer3 = _stage(widths[1], widths[2], layers[2], 2, dd)
        for i, name in enumerate(_STAGES):
            self.feature_info.append(dict(num_chs=widths[i], reduction=2 ** i, module=name))
        self.num_features = widths[-1]
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, str]:
        return dict(stem=r'^conv1|bn1', blocks=r'^layer(\d+)' if coarse else r'^layer(\d+)\.(\d+)')

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Union[str, nn.Module]:
        return 'fc' if name_only else self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """New classifier for ``num_classes`` (0: none); ``global_pool`` None keeps the pooling."""
        dd = dict(device=self.conv1.weight.device, dtype=self.conv1.weight.dtype)
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv1(x)))

    @torch.jit.ignore
    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """``x [N, C, H, W]`` -> (final features, [tapped NCHW maps]) or the maps alone.

        Args:
            indices: The last n taps if an int, every tap if None, these taps (0 stem, 1-3 stages) if a list.
            norm: Accepted for timm's interface; the CIFAR ResNet has no final norm.
            stop_early: Stop after the last tap asked for.
            output_fmt: ``'NCHW'`` only.
            intermediates_only: Return only the list of taps.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"output_fmt: ResNetCifar gives 'NCHW' maps, got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(_STAGES) + 1, indices)
        x = self._stem(x)
        intermediates = [x] if 0 in take_indices else []
        for i, name in enumerate(_STAGES[:max_index] if stop_early else _STAGES, start=1):
            stage = getattr(self, name)
            x = checkpoint_seq(stage, x) if self.grad_checkpointing else stage(x)
            if i in take_indices:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    @torch.jit.ignore
    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drop the stages after the last tap in ``indices`` (and the head); returns the taps kept."""
        take_indices, max_index = feature_take_indices(len(_STAGES) + 1, indices)
        for name in _STAGES[max_index:]:
            setattr(self, name, nn.Sequential())
        if max_index < len(_STAGES):
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
        if prune_head or max_index < len(_STAGES):
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W] -> [N, 64, H/4, W/4]``."""
        x = self._stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq([self.layer1, self.layer2, self.layer3], x, flatten=True)
        x = self.layer1(x)
        x = self.layer2(x)
        return self.layer3(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def create_resnet_cifar(variant: str, pretrained: bool = False, **kwargs) -> ResNetCifar:
    return build_model_with_cfg(
        ResNetCifar, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3)),
        **kwargs,
    )


def _cfg(**kwargs) -> Dict:
    return {
        'url': '', 'num_classes': 100, 'input_size': (3, 32, 32), 'pool_size': (8, 8),
        'crop_pct': 1.0, 'interpolation': 'bilinear', 'mean': CIFAR_MEAN, 'std': CIFAR_STD,
        'first_conv': 'conv1', 'classifier': 'fc', 'license': 'apache-2.0', **kwargs,
    }


default_cfgs = generate_default_cfgs({
    'resnet32_cifar': _cfg(),
})


@register_model
def resnet32_cifar(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """ResNet-32 for 32x32 inputs: 3 stages x 5 basic blocks, 16/32/64 channels, 0.46M params."""
    model_args = dict(layers=(5, 5, 5), widths=(16, 32, 64))
    return create_resnet_cifar('resnet32_cifar', pretrained, **dict(model_args, **kwargs))
