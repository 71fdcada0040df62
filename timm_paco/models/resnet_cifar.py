""" CIFAR ResNet (He et al. 2016, sec. 4.2), the ResNet-32 backbone of the CIFAR-LT papers.

A 3x3 16-channel stem at full resolution, then 3 stages of basic blocks with 16/32/64 channels and
strides 1/2/2, global average pooling and a linear classifier. Downsampling shortcuts are the
parameter-free "option A" (stride-2 subsample, zero-pad the new channels), so ResNet-32 has
0.46M parameters. Module names (``conv1``, ``bn1``, ``layer1..3``, ``fc``) match the CIFAR-LT seeds'
checkpoints. Registered as ``resnet32_cifar``; ``paco_resnet32`` wraps it.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import create_classifier
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._manipulate import checkpoint_seq

__all__ = ['ResNetCifar', 'CIFAR100_MEAN', 'CIFAR100_STD']

CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


class PadShortcut(nn.Module):
    """Option-A shortcut: stride-2 subsample ``[N, C, H, W] -> [N, C + 2p, H/2, W/2]``, zero channels."""

    def __init__(self, pad_channels: int):
        super().__init__()
        self.pad_channels = pad_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad_channels, self.pad_channels))


class BasicBlockCifar(nn.Module):
    """Two 3x3 conv-BN layers with an identity / option-A shortcut."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
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


class ResNetCifar(nn.Module):
    """ CIFAR ResNet with ``6n+2`` layers.

    Args:
        layers: Blocks per stage, ``(5, 5, 5)`` for ResNet-32.
        widths: Channels per stage.
        num_classes: Classifier outputs (0 for no classifier).
        in_chans: Input channels.
        global_pool: timm pooling type.
        drop_rate: Dropout before the classifier.
    """

    def __init__(
            self,
            layers: Sequence[int] = (5, 5, 5),
            widths: Sequence[int] = (16, 32, 64),
            num_classes: int = 100,
            in_chans: int = 3,
            global_pool: str = 'avg',
            drop_rate: float = 0.,
    ):
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f'layers {tuple(layers)} and widths {tuple(widths)} must have the same length')
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = nn.ReLU(inplace=True)
        self.feature_info = [dict(num_chs=widths[0], reduction=1, module='act1')]
        in_chs, reduction = widths[0], 1
        for i, (depth, width) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            reduction *= stride
            blocks = [BasicBlockCifar(in_chs if j == 0 else width, width, stride if j == 0 else 1)
                      for j in range(depth)]
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=width, reduction=reduction, module=f'layer{i + 1}'))
            in_chs = width
        self.num_stages = len(layers)
        self.num_features = self.head_hidden_size = in_chs
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def _stages(self) -> List[nn.Module]:
        return [getattr(self, f'layer{i + 1}') for i in range(self.num_stages)]

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
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W] -> [N, 64, H/4, W/4]``."""
        x = self.act1(self.bn1(self.conv1(x)))
        for stage in self._stages():
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint_seq(stage, x)
            else:
                x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create_resnet_cifar(variant: str, pretrained: bool = False, **kwargs) -> ResNetCifar:
    return build_model_with_cfg(
        ResNetCifar, variant, pretrained,
        feature_cfg=dict(out_indices=(0, 1, 2, 3)),
        **kwargs,
    )


def _cfg(**kwargs) -> Dict:
    return {
        'url': '', 'num_classes': 100, 'input_size': (3, 32, 32), 'pool_size': (8, 8),
        'crop_pct': 1.0, 'interpolation': 'bilinear', 'mean': CIFAR100_MEAN, 'std': CIFAR100_STD,
        'first_conv': 'conv1', 'classifier': 'fc', 'license': 'apache-2.0', **kwargs,
    }


default_cfgs = generate_default_cfgs({
    'resnet32_cifar': _cfg(),
})


@register_model
def resnet32_cifar(pretrained: bool = False, **kwargs) -> ResNetCifar:
    """ResNet-32 for 32x32 inputs: 3 stages x 5 basic blocks, 16/32/64 channels, 0.46M params."""
    model_args = dict(layers=(5, 5, 5), widths=(16, 32, 64))
    return _create_resnet_cifar('resnet32_cifar', pretrained, **dict(model_args, **kwargs))
