"""A segmentation model on any timm encoder: a segmentation-models-pytorch decoder (``smp``, the ``[seg]`` extra),
its class convolution, and GPaCo's pixel projector beside it.

``forward(x [N, 3, H, W])``: in eval mode the logits upsampled to the input, ``[N, C, H, W]``; in train mode
``(logits [N, C, h, w], embed [N, D, h, w] or None)`` at the decoder's output size, what the losses take (CE
upsamples the logits to the labels, the pixel PaCo loss reduces the labels to them). The projector is GPaCo's:
1x1 conv-BN-ReLU, 1x1 conv-BN-ReLU, 1x1 conv to ``proj_dim`` (0: none, for plain CE).
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['SEG_ARCHS', 'PaCoSegModel', 'create_seg_model', 'check_input_size', 'pixel_projector', 'import_smp']

SEG_ARCHS = ('UPerNet', 'DeepLabV3Plus', 'FPN', 'Unet', 'DeepLabV3', 'PSPNet', 'Segformer', 'PAN', 'Linknet',
             'MAnet', 'UnetPlusPlus')
SMP_INSTALL = 'pip install -e ".[seg]" (or pip install segmentation-models-pytorch)'


def import_smp():
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise ImportError(f'segmentation needs segmentation-models-pytorch: {SMP_INSTALL}') from None
    return smp


def pixel_projector(in_channels: int, proj_dim: int = 128) -> nn.Sequential:
    """GPaCo's pixel projector: [conv1x1-BN-ReLU] x 2 at ``in_channels``, then conv1x1 to ``proj_dim``."""
    layers = []
    for _ in range(2):
        layers += [nn.Conv2d(in_channels, in_channels, 1, bias=False), nn.BatchNorm2d(in_channels),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.Conv2d(in_channels, proj_dim, 1))


class PaCoSegModel(nn.Module):
    def __init__(self, net: nn.Module, proj_dim: int = 128):
        super().__init__()
        head = getattr(net, 'segmentation_head', None)
        if not isinstance(head, nn.Sequential) or not isinstance(head[0], nn.Conv2d):
            raise ValueError(f'{type(net).__name__} has no dense class convolution (segmentation_head[0] a Conv2d): '
                             f'not a segmentation model this task can train; use one of {", ".join(SEG_ARCHS)}')
        self.net = net
        self.num_classes = head[0].out_channels
        self.projector = pixel_projector(head[0].in_channels, proj_dim) if proj_dim else None

    @property
    def classifier(self) -> nn.Conv2d:
        """The class convolution of smp's head (its upsampling is done here, in ``forward``)."""
        return self.net.segmentation_head[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's output ``[N, F, h, w]``; the input's size must suit the encoder's strides."""
        check = getattr(self.net, 'check_input_shape', None)
        if check is not None:
            try:
                check(x)
            except RuntimeError as e:
                raise ValueError(f'input of shape {list(x.shape)}: {" ".join(str(e).split())}') from None
        return self.net.decoder(self.net.encoder(x))

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, Optional[torch.Tensor]]]:
        feat = self.features(x)
        logits = self.classifier(feat)
        if self.training:
            return logits, None if self.projector is None else self.projector(feat)
        return F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False)


def check_input_size(model: PaCoSegModel, size: Tuple[int, int], flag: str = '--encoder'):
    """One image of ``size`` (H, W) through ``model`` (no gradient, modes kept): a size the encoder cannot take
    (a fixed-size ViT / Swin, strides that do not divide it) is one ValueError before training starts."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *size, device=next(model.parameters()).device))
    except (AssertionError, RuntimeError) as e:
        raise ValueError(f'{flag}: the model cannot take {size[0]}x{size[1]} images ({" ".join(str(e).split())[:200]}'
                         f'); a fixed-size encoder needs --model-kwargs img_size={size[0]} (Swin: also a '
                         f'window_size dividing its feature maps)') from None
    finally:
        model.train(was_training)


def create_seg_model(encoder: str, num_classes: int, arch: str = 'UPerNet', proj_dim: int = 128,
                     in_chans: int = 3, pretrained: bool = False, **model_kwargs) -> PaCoSegModel:
    """smp ``arch`` on timm's ``encoder`` (smp's ``tu-<encoder>``: timm's ``features_only`` model) with ``num_classes``
    outputs and a ``proj_dim`` pixel projector. ``pretrained``: the encoder's ImageNet weights (a download).
    ``model_kwargs`` go to smp's model: the decoder's own (``decoder_channels``) and, the rest, timm's encoder."""
    smp = import_smp()
    if arch not in SEG_ARCHS:
        raise ValueError(f'--arch {arch}: expected one of {", ".join(SEG_ARCHS)} (segmentation-models-pytorch '
                         f'decoders with a dense class convolution)')
    name = encoder if encoder.startswith('tu-') else f'tu-{encoder}'
    try:
        net = smp.create_model(arch, encoder_name=name, encoder_weights='imagenet' if pretrained else None,
                               in_channels=in_chans, classes=num_classes, **model_kwargs)
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ValueError(f'--encoder {encoder} with --arch {arch}: segmentation-models-pytorch cannot build it '
                         f'({" ".join(str(e).split())[:300]}); a timm encoder with multi-scale features '
                         f'(features_only: resnet, convnext, swin, efficientnet, ...) is needed') from None
    return PaCoSegModel(net, proj_dim)
