"""Reading a segmentation checkpoint (``python -m timm_paco.seg train``'s ``last.pth.tar``) back into its model,
through the project's one safe reader (no pickled code runs) and with a finite check."""
import argparse
from typing import Dict, Optional, Tuple

from timm_paco.checkpoint_io import load_checkpoint_file
from timm_paco.finite import check_finite_state
from timm_paco.seg.model import PaCoSegModel, create_seg_model

__all__ = ['load_seg_model']


def load_seg_model(path: str, encoder: Optional[str] = None, arch: Optional[str] = None,
                   num_classes: Optional[int] = None, model_kwargs: Optional[Dict] = None,
                   flag: str = '--checkpoint') -> Tuple[PaCoSegModel, Dict]:
    """(model with the checkpoint's weights, in eval mode; the flags of the run that wrote it). ``encoder`` /
    ``arch`` / ``num_classes`` / ``model_kwargs`` default to the run's and must match its weights when given."""
    checkpoint = load_checkpoint_file(path, flag=flag)
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise ValueError(f'{flag} {path}: not a checkpoint of python -m timm_paco.seg train (no state_dict)')
    saved = checkpoint.get('args')
    saved = vars(saved) if isinstance(saved, argparse.Namespace) else dict(saved or {})
    encoder, arch = encoder or saved.get('encoder'), arch or saved.get('arch')
    num_classes = num_classes or saved.get('num_classes')
    model_kwargs = dict(model_kwargs or saved.get('model_kwargs') or {})
    if not (encoder and arch and num_classes):
        raise ValueError(f'{flag} {path}: the checkpoint does not record its encoder / arch / classes; pass '
                         f'--encoder, --arch and --num-classes')
    state = checkpoint['state_dict']
    check_finite_state(state, f'{flag} {path}')
    proj_dim = state['projector.6.weight'].shape[0] if 'projector.6.weight' in state else 0
    model = create_seg_model(encoder, num_classes, arch, proj_dim=proj_dim, **model_kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f'{flag} {path}: its weights do not fit --encoder {encoder} --arch {arch} --num-classes '
                         f'{num_classes} --model-kwargs {model_kwargs} ({" ".join(str(e).split())[:300]})') from None
    return model.eval(), saved
