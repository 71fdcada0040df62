"""The licence a model card gives its weights, and the sentence that says where it comes from.

* Weights that train.py did not write (the authors' checkpoints, converted or not, and any bare state dict) keep
  the licence their architecture's pretrained cfg records (the PaCo / GPaCo ResNets ``mit``, the MAE-based GPaCo
  ViTs ``cc-by-nc-4.0``, DSCL ``apache-2.0``); a different ``chosen`` licence is refused, since an exporter cannot
  relabel someone else's weights.
* A train.py run takes the ``chosen`` licence (``--license``); without one, a run fine-tuned from pretrained
  weights (``--pretrained``) keeps theirs, and one trained from scratch gets ``DEFAULT_RUN_LICENSE``.
"""
from typing import Any, Mapping, Optional, Tuple

import torch.nn as nn

__all__ = ['DEFAULT_RUN_LICENSE', 'card_license', 'is_train_run']

DEFAULT_RUN_LICENSE = 'apache-2.0'


def is_train_run(args: Mapping[str, Any]) -> bool:
    """True for the recorded arguments of a train.py run (every release records ``--task`` or ``--paco-*``
    flags); False for the authors' checkpoints (no arguments, or their own scripts') and bare state dicts."""
    return any(key == 'task' or key.startswith('paco_') for key in args)


def card_license(model: nn.Module, args: Mapping[str, Any], chosen: Optional[str] = None) -> Tuple[str, str]:
    """``(licence, where it comes from)`` for the weights of ``model`` trained with ``args`` (rules above)."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    cfg_license, origin = cfg.get('license'), cfg.get('origin_url')
    if not is_train_run(args):
        if cfg_license is None:
            return chosen or DEFAULT_RUN_LICENSE, ('chosen by the exporter' if chosen else
                                                   'not recorded for these weights; the exporter\'s default')
        if chosen and chosen != cfg_license:
            raise ValueError(f'license {chosen!r}: these weights are not a train.py run, so they are the '
                             f'{cfg.get("architecture")} weights under their authors\' {cfg_license} licence'
                             f'{f" ({origin})" if origin else ""}; export them without another licence')
        return cfg_license, f'the licence of the authors\' weights{f" ({origin})" if origin else ""}'
    if chosen:
        return chosen, 'chosen by the exporter'
    if args.get('pretrained') and cfg_license:
        return cfg_license, 'the licence of the pretrained weights this run was fine-tuned from'
    return DEFAULT_RUN_LICENSE, 'the default for weights trained from scratch with timm-paco (--license sets another)'
