"""Publish the papers' model zoo under the registered tags' Hub repos (a maintainer's command, needs a network).

    python -m timm_paco.hub publish-zoo SRC_DIR [--only TAG ...] [--private] [--token T]

For every tag of ``timm_paco.models.zoo.ZOO`` (or those of ``--only``) whose repo (the cfg's ``hf_hub_id``) has no
``model.safetensors`` yet: the authors' checkpoint, saved as ``SRC_DIR/<tag>.pth.tar`` (or ``.pth`` /
``.safetensors``) from the link in the table, is converted (``timm_paco.convert``), exported in the stock timm form
with its projector and a model card carrying the paper's top-1, and pushed. A tag already published is skipped, so
a re-run completes what an interrupted one left; a tag without its file is reported with its download link.
"""
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Iterable, Optional

import timm
from huggingface_hub import HfApi

from timm_paco.version import __version__
from ..convert import convert_checkpoint
from ..models.recipes import recipe_for, stock_architecture
from ..models.zoo import AUTHORS_HUB, ZOO
from ..tasks.projector_file import PROJECTOR_FILE
from .export import export_model
from .model_card import model_card
from .push import require_token

__all__ = ['SOURCE_SUFFIXES', 'find_source', 'publish_zoo']

SOURCE_SUFFIXES = ('.pth.tar', '.pth', '.safetensors')


def find_source(src_dir: str, tag: str) -> Optional[str]:
    """``src_dir/<tag><suffix>`` for the first suffix of ``SOURCE_SUFFIXES`` that exists, else None."""
    return next((os.path.join(src_dir, tag + s) for s in SOURCE_SUFFIXES
                 if os.path.isfile(os.path.join(src_dir, tag + s))), None)


def _reported_top1(cfg) -> Optional[float]:
    note = next((n for n in cfg.notes or () if n.startswith('top1:')), None)
    return float(note.split(':', 1)[1]) if note else None


def _build_folder(src: str, tag: str, out_dir: str, **model_kwargs: Any) -> None:
    """Convert ``src`` and write the Hub folder of ``tag`` (stock timm form, projector, card) to ``out_dir``."""
    cfg = timm.models.get_pretrained_cfg(tag)
    converted = os.path.join(out_dir, 'converted')
    convert_checkpoint(src, converted, model_name=tag, **model_kwargs)
    model = timm.create_model(
        tag, pretrained=True, pretrained_cfg_overlay=dict(file=os.path.join(converted, 'model.safetensors')),
        **model_kwargs).eval()
    folder = os.path.join(out_dir, 'folder')
    out_model = export_model(model, folder, form='timm')
    if os.path.isfile(os.path.join(converted, PROJECTOR_FILE)):
        shutil.copy(os.path.join(converted, PROJECTOR_FILE), os.path.join(folder, PROJECTOR_FILE))
    top1 = _reported_top1(cfg)
    card = model_card(
        repo_name=cfg.hf_hub_id, architecture=stock_architecture(tag), form='timm',
        args=dict(task=recipe_for(tag).task, model=tag), results={'top1': top1} if top1 is not None else None,
        param_count=sum(p.numel() for p in out_model.parameters()), default_task=recipe_for(tag).task,
        license=cfg.license or 'apache-2.0', has_projector=os.path.isfile(os.path.join(folder, PROJECTOR_FILE)),
        results_source=f"the paper's reported top-1 on {dict(n.split(': ', 1) for n in cfg.notes).get('eval')}, "
                       f"weights converted from the authors' release ({ZOO[tag].download or AUTHORS_HUB})")
    with open(os.path.join(folder, 'README.md'), 'w', encoding='utf-8') as f:
        f.write(card)


def publish_zoo(
        src_dir: str,
        tags: Optional[Iterable[str]] = None,
        token: Optional[str] = None,
        endpoint: Optional[str] = None,
        private: bool = False,
        log: Callable[[str], None] = print,
        **model_kwargs: Any,
) -> Dict[str, str]:
    """Publish the zoo from ``src_dir``; returns ``{tag: 'published' | 'skipped' | 'missing'}``.

    ``model_kwargs`` go to ``timm.create_model`` (tests use reduced architectures). ValueError for a tag that is
    not in the zoo or when no token is found, before any upload.
    """
    tags = list(tags) if tags else sorted(ZOO)
    unknown = [t for t in tags if t not in ZOO]
    if unknown:
        raise ValueError(f'--only {" ".join(unknown)}: not zoo tags; the zoo has {", ".join(sorted(ZOO))}')
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f"SRC_DIR '{src_dir}' is not a folder of downloaded checkpoints")
    api = HfApi(endpoint=endpoint, token=require_token(token), library_name='timm-paco', library_version=__version__)
    status = {}
    for tag in tags:
        repo_id = timm.models.get_pretrained_cfg(tag).hf_hub_id
        if api.file_exists(repo_id, 'model.safetensors'):
            status[tag] = 'skipped'
            log(f'{tag}: {repo_id} already has model.safetensors, skipped')
            continue
        src = find_source(src_dir, tag)
        if src is None:
            status[tag] = 'missing'
            log(f'{tag}: no {tag}{SOURCE_SUFFIXES[0]} in {src_dir}; download it from '
                f'{ZOO[tag].download or AUTHORS_HUB}')
            continue
        with tempfile.TemporaryDirectory() as tmp:
            _build_folder(src, tag, tmp, **model_kwargs)
            api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=os.path.join(tmp, 'folder'),
                              commit_message=f"Add {tag}, converted from the authors' checkpoint")
        status[tag] = 'published'
        log(f'{tag}: published to {repo_id}')
    return status
