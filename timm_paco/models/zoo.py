""" The papers' released checkpoints behind the registered pretrained tags, and what ``pretrained=True`` says while
a tag's Hub repo is not published.

Every pretrained tag names the Hub repo ``timm-paco/<name>.<tag>`` (its cfg's ``hf_hub_id``), which
``python -m timm_paco.zoo publish`` fills from the authors' checkpoints (converted on the way, see
``timm_paco.zoo``). The download links are the ones the seed repository's README gives
(github.com/dvlab-research/Parametric-Contrastive-Learning); its authors now also host their checkpoints on the
Hub (``AUTHORS_HUB``, per their answer in the seed repository's issue 29, June 2026). Where the README has no
link (``TBD`` / ``---``), ``download`` is None. Sizes and hashes are not published by the authors: None.
"""
from dataclasses import dataclass
from functools import wraps
from typing import Callable, Dict, Optional

__all__ = ['AUTHORS_HUB', 'ZooEntry', 'ZOO', 'PretrainedWeightsUnavailable', 'unavailable_message',
           'with_zoo_errors']

AUTHORS_HUB = 'https://huggingface.co/jiequan/Parametric-Contrastive-Learning'
_DRIVE = 'https://drive.google.com/file/d/{}/view?usp=sharing'


@dataclass(frozen=True)
class ZooEntry:
    """One released checkpoint: its download link (None where the authors give none), size and sha256 (None
    where unknown)."""
    download: Optional[str]
    size: Optional[int] = None
    sha256: Optional[str] = None


ZOO: Dict[str, ZooEntry] = {
    # PaCo, ICCV 2021
    'paco_resnet50.in1k': ZooEntry(_DRIVE.format('1fBbTWJlM3knjN0SIjrLhQw_TeUuoHsOe')),
    'paco_resnet101.in1k': ZooEntry(_DRIVE.format('18lAQu33eN4pzhOi6lSmvfK6ORvD0gMGg')),
    'paco_resnet200.in1k': ZooEntry(_DRIVE.format('14ZOI8tdUMGZFp08QfYog-aRr541psmur')),
    'paco_resnet50.imagenet_lt': ZooEntry(_DRIVE.format('1a73Ez_k47S2hmD_0L-sLH0OEhxK8SpQt')),
    'paco_resnext50_32x4d.imagenet_lt': ZooEntry(_DRIVE.format('1J7pvp-CWx7e2hPFNa1a05Oy9igHSe1eM')),
    'paco_resnext101_32x4d.imagenet_lt': ZooEntry(_DRIVE.format('1k14zhOwF8NBTb17mUN_UAGBkIIZsVBCV')),
    'paco_resnet50.inat2018': ZooEntry(None),
    'paco_resnet152.inat2018': ZooEntry(None),
    'paco_resnet152.places_lt': ZooEntry(None),
    # GPaCo, TPAMI 2023
    'gpaco_resnet50.in1k': ZooEntry(_DRIVE.format('1aO_Vo8v0ZRfDFLayVndkO3HJC6ZqIhKh')),
    'vit_base_patch16_gpaco_224.in1k': ZooEntry(_DRIVE.format('1DLZLXt7PH4NiJ5AqebA9f9iHgMiS8muz')),
    'vit_large_patch16_gpaco_224.in1k': ZooEntry(
        'https://mycuhk-my.sharepoint.com/:u:/g/personal/1155116769_link_cuhk_edu_hk/'
        'EYSTVmFZ99FEuOxt7LxiFesBoK2LNw2xC1H615Ir6Gd3ag?e=3ngaR0'),
    'gpaco_resnet50.imagenet_lt': ZooEntry(_DRIVE.format('146_KqMYAeefAyavFfrysKa_jlnT3-DrC')),
    'gpaco_resnext50_32x4d.imagenet_lt': ZooEntry(_DRIVE.format('1_iTsXp2VJJ1zCOQL2eCjoAjFDEmcbpfE')),
    'gpaco_resnext101_32x4d.imagenet_lt': ZooEntry(_DRIVE.format('1PkcgIgeMimb6zPSaOSAmTMsG8ahm3di1')),
    'gpaco_resnet50.inat2018': ZooEntry(_DRIVE.format('1u2e0tvmHtgdcats5xgcAK76nes8SzjMW')),
    'gpaco_resnet152.inat2018': ZooEntry(None),
    'gpaco_resnet152.places_lt': ZooEntry(_DRIVE.format('1vbdM3ouFkt3qBWOMq59v1C8B8t0j2Nvc')),
}


class PretrainedWeightsUnavailable(FileNotFoundError):
    """``pretrained=True`` for a tag whose Hub repo could not be read; the message says where the weights are."""


def unavailable_message(tag: str, hf_hub_id: Optional[str]) -> str:
    """One line: the repo that could not be read, the authors' download and the command that converts it."""
    entry = ZOO.get(tag)
    where = (entry.download if entry and entry.download else 'no download link is published for it') + \
        f' (the authors also host their checkpoints at {AUTHORS_HUB})'
    return (f'{tag}: pretrained weights not found on the Hub at {hf_hub_id} (not published yet, or no network); '
            f'the authors\' checkpoint: {where}; convert it with `python -m timm_paco.convert CKPT OUT --model '
            f'{tag}` and load it with create_model({tag!r}, pretrained=True, '
            f'pretrained_cfg_overlay=dict(file="OUT/model.safetensors"))')


def _hub_errors():
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled
    return EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled


def with_zoo_errors(create: Callable) -> Callable:
    """Wrap a ``_create_*(variant, ..., pretrained, **kwargs)``: a Hub download that fails for a pretrained tag of
    the zoo becomes one ``PretrainedWeightsUnavailable`` line instead of huggingface_hub's trace."""
    @wraps(create)
    def wrapper(variant: str, *args, **kwargs):
        try:
            return create(variant, *args, **kwargs)
        except _hub_errors() as e:
            from timm.models._builder import resolve_pretrained_cfg
            cfg = resolve_pretrained_cfg(
                variant, pretrained_cfg=kwargs.get('pretrained_cfg'), pretrained_cfg_overlay=kwargs.get(
                    'pretrained_cfg_overlay'))
            tag = f'{variant}.{cfg.tag}' if cfg.tag else variant
            raise PretrainedWeightsUnavailable(unavailable_message(tag, cfg.hf_hub_id)) from e
    return wrapper
