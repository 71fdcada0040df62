"""validate.py's bulk modes (a checkpoint folder, ``all``, a wildcard, a model-list file) and timm's retry with
smaller batches on out-of-memory."""
import glob
import logging
import os

import torch
from timm import utils
from timm.models import is_model, list_models
from timm.utils import natural_key

__all__ = ['bulk_tag', 'bulk_configs', 'try_run']

_logger = logging.getLogger('validate')

_NON_IN1K_FILTERS = ['*_in21k', '*_in22k', '*in12k', '*_dino', '*fcmae', '*seer']


def bulk_tag(model: str, checkpoint: str) -> str:
    """A file-name part naming one evaluation of a bulk run: the checkpoint's stem, else the model name."""
    name = os.path.basename(checkpoint) if checkpoint else model
    for ext in ('.pth.tar', '.pth', '.safetensors'):
        if name.endswith(ext):
            name = name[:-len(ext)]
    return name.replace(os.sep, '_')


def bulk_configs(args):
    """(model, checkpoint) pairs for timm's bulk modes: checkpoint folder, 'all', wildcard, model-list file."""
    if os.path.isdir(args.checkpoint):
        files = [f for ext in ('*.pth.tar', '*.pth') for f in glob.glob(os.path.join(args.checkpoint, ext))]
        return [(args.model, c) for c in sorted(files, key=natural_key)]
    if args.model == 'all':
        args.pretrained = True
        return [(n, '') for n in list_models(pretrained=True, exclude_filters=_NON_IN1K_FILTERS)]
    if not is_model(args.model):
        configs = [(n, '') for n in list_models(args.model, pretrained=True)]
        if not configs and os.path.isfile(args.model):
            with open(args.model) as f:
                configs = [(line.strip(), None) for line in f if line.strip()]
        return configs
    return []


def try_run(validate, args, initial_batch_size):
    """``validate(args)``, retried with smaller batches while the error is an out-of-memory one (``--retry``, and
    each model of a bulk run); a failure is returned as ``{'model', 'error'}``."""
    batch_size = initial_batch_size
    error = 'Unknown'
    while batch_size:
        args.batch_size = batch_size * args.num_gpu
        try:
            if 'cuda' in args.device and torch.cuda.is_available():
                torch.cuda.empty_cache()
            return validate(args)
        except RuntimeError as e:
            error = str(e)
            _logger.error(f'"{error}" while running validation.')
            if not utils.check_batch_size_retry(error):
                break
        batch_size = utils.decay_batch_step(batch_size)
        _logger.warning(f'Reducing batch size to {batch_size} for retry.')
    _logger.error(f'{args.model} failed to validate ({error}).')
    return dict(model=args.model, error=error)
