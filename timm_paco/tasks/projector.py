""" Projection MLPs mapping pooled backbone features to the contrastive embedding space.

Three layouts, named after the layers they hold (indices match the seeds' checkpoints, so a seed
projector's state dict loads into these with no renaming):

* ``'mlp'``:  Linear(C, H) - BatchNorm1d(H) - act - Linear(H, D)          (PaCo CNNs, act ReLU)
* ``'mlp2'``: Linear(C, H) - act - Linear(H, D)                           (MoCo v2's head, DSCL's, act ReLU)
* ``'mlp3'``: Linear(C, H) - act - Linear(H, H) - act - Linear(H, D)     (GPaCo, act GELU for ViTs,
  ReLU for the GPaCo ResNets)

The hidden width ``H`` defaults to the input width ``C`` as in the seeds. Output is not normalised;
``ContrastiveModule`` L2-normalises it. ``Projector.config`` holds the arguments that rebuild it (saved beside its
weights in training checkpoints and Hub exports).
"""
from typing import Optional, Union, Type

import torch.nn as nn
from timm.layers import get_act_layer

__all__ = ['Projector', 'PROJ_TYPES', 'default_proj_act']

PROJ_TYPES = ('mlp', 'mlp2', 'mlp3')
_DEFAULT_ACT = {'mlp': 'relu', 'mlp2': 'relu', 'mlp3': 'gelu'}


def default_proj_act(proj_type: str) -> str:
    """Activation the seeds use with ``proj_type`` when none is given."""
    if proj_type not in PROJ_TYPES:
        raise ValueError(f'proj_type must be one of {PROJ_TYPES}, got {proj_type!r}')
    return _DEFAULT_ACT[proj_type]


class Projector(nn.Sequential):
    """ Projection head ``[N, in_dim] -> [N, out_dim]``.

    Args:
        in_dim: Input (backbone pooled feature) width.
        out_dim: Embedding width.
        proj_type: ``'mlp'`` (Linear-BN-act-Linear), ``'mlp2'`` (Linear-act-Linear) or ``'mlp3'``
            (Linear-act-Linear-act-Linear).
        hidden_dim: Hidden width, ``in_dim`` if None.
        act_layer: Activation name or class, the ``proj_type`` default (relu / relu / gelu) if None.
    """

    def __init__(
            self,
            in_dim: int,
            out_dim: int = 128,
            proj_type: str = 'mlp',
            hidden_dim: Optional[int] = None,
            act_layer: Optional[Union[str, Type[nn.Module]]] = None,
    ):
        default_act = default_proj_act(proj_type)  # validates proj_type
        act_name = act_layer if act_layer is not None else default_act
        for name, value in (('in_dim', in_dim), ('out_dim', out_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        hidden_dim = hidden_dim or in_dim
        try:
            act = get_act_layer(act_name)
        except KeyError:
            act = None
        if act is None:
            raise ValueError(f'act_layer {act_layer!r} is not a known timm activation')
        if proj_type == 'mlp':
            layers = [nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), act(), nn.Linear(hidden_dim, out_dim)]
        elif proj_type == 'mlp2':
            layers = [nn.Linear(in_dim, hidden_dim), act(), nn.Linear(hidden_dim, out_dim)]
        else:
            layers = [
                nn.Linear(in_dim, hidden_dim), act(),
                nn.Linear(hidden_dim, hidden_dim), act(),
                nn.Linear(hidden_dim, out_dim),
            ]
        super().__init__(*layers)
        self.proj_type = proj_type
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.config = dict(in_dim=in_dim, out_dim=out_dim, proj_type=proj_type, hidden_dim=hidden_dim,
                           act_layer=act_name if isinstance(act_name, str) else act.__name__.lower())
