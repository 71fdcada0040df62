"""Out-of-distribution ImageNet test sets: ImageNet-R / -A class masks, ImageNet-Sketch, ImageNet-C mCE.

ImageNet-R (renditions) and ImageNet-A (natural adversarial examples) cover 200 of the 1000 ImageNet
classes; a 1000-way classifier is scored on them by keeping the 200 matching logits (``output[:, mask]``).
Their folders are named by WordNet id (``ROOT/<wnid>/*.jpg``); the 200 wnids of each are stored beside this
file (``imagenet_r_wnids.txt``, ``imagenet_a_wnids.txt``, from Hendrycks et al.'s releases). The 1000 sorted
ImageNet-1k wnids come from timm (``timm.data.ImageNetInfo``). ImageNet-Sketch (``ROOT/<wnid>/*.JPEG``) has
all 1000 classes.

ImageNet-C (Hendrycks & Dietterich, ICLR 2019) ships as ``ROOT/<corruption>/<severity 1..5>/<wnid>/*.JPEG``
(the four category tarballs may also be kept as ``ROOT/<category>/<corruption>/...``). With top-1 errors
E_{s,c} (fractions) per corruption c and severity s:
    CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c},   mCE = mean_c CE_c
    relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^AlexNet_{s,c} - E^AlexNet_clean)
"""
import os
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

from timm.data import ImageNetInfo

OOD_DATASETS = ('imagenet-r', 'imagenet-a', 'imagenet-sketch', 'imagenet-c')

IMAGENET_C_CATEGORIES = {
    'noise': ('gaussian_noise', 'shot_noise', 'impulse_noise'),
    'blur': ('defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur'),
    'weather': ('snow', 'frost', 'fog', 'brightness'),
    'digital': ('contrast', 'elastic_transform', 'pixelate', 'jpeg_compression'),
}
IMAGENET_C_CORRUPTIONS = tuple(c for cs in IMAGENET_C_CATEGORIES.values() for c in cs)
IMAGENET_C_SEVERITIES = (1, 2, 3, 4, 5)

# AlexNet top-1 error on each ImageNet-C corruption, averaged over the 5 severities (fractions), as published
# with Hendrycks & Dietterich's ImageNet-C benchmark (github.com/hendrycks/robustness). Sums over severities
# are 5x these means.
ALEXNET_ERRORS = {
    'gaussian_noise': 0.886428,
    'shot_noise': 0.894468,
    'impulse_noise': 0.922640,
    'defocus_blur': 0.819880,
    'glass_blur': 0.826268,
    'motion_blur': 0.785948,
    'zoom_blur': 0.798360,
    'snow': 0.866816,
    'frost': 0.826572,
    'fog': 0.819324,
    'brightness': 0.564592,
    'contrast': 0.853204,
    'elastic_transform': 0.646056,
    'pixelate': 0.717840,
    'jpeg_compression': 0.606500,
}
ALEXNET_CLEAN_ERROR = 0.4348  # AlexNet top-1 error on the clean ImageNet validation set


@lru_cache()
def imagenet_wnids() -> Tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in class-index order (sorted)."""
    return tuple(ImageNetInfo('imagenet-1k').label_names())


@lru_cache()
def subset_wnids(name: str) -> Tuple[str, ...]:
    """Sorted wnids of the 200-class 'imagenet-r' or 'imagenet-a' subset."""
    files = {'imagenet-r': 'imagenet_r_wnids.txt', 'imagenet-a': 'imagenet_a_wnids.txt'}
    if name not in files:
        raise ValueError(f'subset name must be one of {sorted(files)}, got {name!r}')
    path = os.path.join(os.path.dirname(__file__), files[name])
    with open(path) as f:
        wnids = tuple(line.strip() for line in f if line.strip())
    return wnids


def subset_mask(name: str) -> List[int]:
    """Indices [200] (ascending) into the 1000 ImageNet logits of the 'imagenet-r' / 'imagenet-a' classes.

    Column i of ``output[:, subset_mask(name)]`` is the class ``subset_wnids(name)[i]``.
    """
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    missing = [w for w in subset_wnids(name) if w not in index]
    if missing:
        raise ValueError(f'{name} wnids not among the ImageNet-1k classes: {missing}')
    return [index[w] for w in subset_wnids(name)]


def ood_class_map(name: str) -> Dict[str, int]:
    """Folder name (wnid) -> target index for an OOD set: into the 200-class subset for 'imagenet-r' /
    'imagenet-a', into the 1000 ImageNet classes for 'imagenet-sketch' / 'imagenet-c'."""
    if name in ('imagenet-r', 'imagenet-a'):
        wnids = subset_wnids(name)
    elif name in ('imagenet-sketch', 'imagenet-c'):
        wnids = imagenet_wnids()
    else:
        raise ValueError(f'OOD dataset must be one of {OOD_DATASETS}, got {name!r}')
    return {w: i for i, w in enumerate(wnids)}


def check_class_folders(root: str, class_map: Dict[str, int], what: str = '--data-dir'):
    """Raise unless ``root`` exists and every sub-folder of it is a class of ``class_map``."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f'{what}: image folder {root} does not exist')
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not folders:
        raise ValueError(f'{what}: {root} has no class (wnid) sub-folders')
    unknown = [d for d in folders if d not in class_map]
    if unknown:
        raise ValueError(
            f'{what}: folders of {root} are not classes of this dataset (expected wnids): {unknown[:5]}'
            + (f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''))


def parse_corruptions(names: Optional[str]) -> Tuple[str, ...]:
    """Comma-separated corruption names -> tuple (all 15 when empty), rejecting unknown names."""
    if not names:
        return IMAGENET_C_CORRUPTIONS
    out = tuple(n.strip() for n in names.split(',') if n.strip())
    unknown = [n for n in out if n not in ALEXNET_ERRORS]
    if unknown or not out:
        raise ValueError(
            f'--ood-corruptions: unknown ImageNet-C corruption(s) {unknown or names!r}; '
            f'expected names from {", ".join(IMAGENET_C_CORRUPTIONS)}')
    return out


def imagenet_c_folders(
        root: str,
        corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS,
        severities: Sequence[int] = IMAGENET_C_SEVERITIES,
) -> List[Tuple[str, int, str]]:
    """``[(corruption, severity, folder)]`` for an ImageNet-C root, in the order given.

    Each corruption is looked up as ``root/<corruption>`` or ``root/<category>/<corruption>``. Every named
    corruption and severity must be present: a missing folder raises FileNotFoundError naming it.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f'--data-dir: ImageNet-C root {root} does not exist')
    category_of = {c: cat for cat, cs in IMAGENET_C_CATEGORIES.items() for c in cs}
    out = []
    for c in corruptions:
        if c not in category_of:
            raise ValueError(f'unknown ImageNet-C corruption {c!r}; expected one of {IMAGENET_C_CORRUPTIONS}')
        candidates = [os.path.join(root, c), os.path.join(root, category_of[c], c)]
        base = next((p for p in candidates if os.path.isdir(p)), None)
        if base is None:
            raise FileNotFoundError(
                f'ImageNet-C corruption folder {candidates[0]} (or {candidates[1]}) not found; '
                f'name the corruptions present with --ood-corruptions to evaluate a subset')
        for s in severities:
            folder = os.path.join(base, str(s))
            if not os.path.isdir(folder):
                raise FileNotFoundError(f'ImageNet-C severity folder {folder} not found')
            out.append((c, int(s), folder))
    return out


def corruption_errors(
        errors: Dict[str, Sequence[float]],
        clean_error: Optional[float] = None,
        alexnet_errors: Optional[Dict[str, float]] = None,
        alexnet_clean_error: float = ALEXNET_CLEAN_ERROR,
) -> Dict[str, object]:
    """Corruption errors normalised by AlexNet (Hendrycks & Dietterich 2019).

    Args:
        errors: {corruption: [E_1, ..., E_S]} top-1 errors (fractions in [0, 1]) per severity.
        clean_error: the model's clean top-1 error (fraction); enables relative CE / relative mCE.
        alexnet_errors: {corruption: mean AlexNet error over the severities}; default ``ALEXNET_ERRORS``.

    Returns:
        {'ce': {c: CE_c}, 'mce': mean CE, and with ``clean_error`` 'relative_ce', 'relative_mce'}, as
        fractions (multiply by 100 for the usual percent figures).
    """
    alexnet_errors = ALEXNET_ERRORS if alexnet_errors is None else alexnet_errors
    if not errors:
        raise ValueError('errors must name at least one corruption')
    if clean_error is not None and not 0. <= clean_error <= 1.:
        raise ValueError(f'clean_error must be a fraction in [0, 1], got {clean_error}')
    ce, rel_ce = {}, {}
    for c, errs in errors.items():
        if c not in alexnet_errors:
            raise ValueError(f'no AlexNet error for corruption {c!r}; known: {sorted(alexnet_errors)}')
        errs = [float(e) for e in errs]
        if not errs or any(not 0. <= e <= 1. for e in errs):
            raise ValueError(f'errors[{c!r}] must be a non-empty list of fractions in [0, 1], got {errs}')
        n = len(errs)
        alex_sum = n * alexnet_errors[c]
        ce[c] = sum(errs) / alex_sum
        if clean_error is not None:
            rel_ce[c] = (sum(errs) - n * clean_error) / (alex_sum - n * alexnet_clean_error)
    out = {'ce': ce, 'mce': sum(ce.values()) / len(ce)}
    if clean_error is not None:
        out['relative_ce'] = rel_ce
        out['relative_mce'] = sum(rel_ce.values()) / len(rel_ce)
    return out
