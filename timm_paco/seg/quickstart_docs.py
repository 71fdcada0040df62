"""The segmentation quick start's write-up (``--docs DIR``): ``seg_mosaics.md`` (the table, per-class IoU, the
setup; its Discussion kept across reruns), ``seg_mosaics_predictions.png`` (test mosaics, labels and both
models' predictions, first seed) and ``seg_mosaics_per_class.png`` (mean per-class IoU of both, classes by
training pixels)."""
import os
from typing import Dict, List

import torch

from timm_paco.runs import write_with_discussion
from timm_paco.seg.checkpoint import load_seg_model
from timm_paco.seg.dataset import SegFolder
from timm_paco.seg.metrics import plot_per_class_iou
from timm_paco.seg.quickstart import LOSSES, format_mean_std

__all__ = ['write_docs']

NAMES = dict(LOSSES)


def _lines(args, meta: Dict, recipe: Dict, summary: Dict[str, Dict], elapsed: float, rare: List[str]) -> List[str]:
    classes, pixels, mosaics = meta['classes'], meta['pixels']['train'], meta['recipe']
    seeds = ' '.join(map(str, args.seeds))
    lines = [
        '# GPaCo segmentation on Fashion-MNIST mosaics: CE against CE + pixel PaCo', '',
        f'Reproduce: `python -m timm_paco.seg quickstart --seeds {seeds} --docs {args.docs}'
        + (' --tiny' if args.tiny else '') + '`', '',
        f'| loss | mIoU | rare classes mIoU ({", ".join(rare)}) | pixel accuracy |', '|---|---|---|---|']
    lines += [f'| {NAMES[loss]} | ' + ' | '.join(format_mean_std(e[k]) for k in ('miou', 'miou_rare', 'pixel_acc'))
              + ' |'
              for loss, e in summary.items()]
    lines += ['', f'Test mosaics ({mosaics["n_test"]}), %, mean ± sample std over seeds {args.seeds}; mIoU over '
                  f'the {len(classes)} classes (background included), rare: the three garments with the fewest '
                  f'training pixels.', '',
              '![test mosaics, labels and predictions](seg_mosaics_predictions.png)', '',
              '| class | training pixels | ' + ' | '.join(f'{NAMES[k]} IoU' for k in summary) + ' |',
              '|---|---|' + '---|' * len(summary)]
    for c in sorted(range(len(classes)), key=lambda c: -pixels[c]):
        lines.append(f'| {classes[c]} | {pixels[c]:,} | ' + ' | '.join(
            'n/a' if e['iou'][c] is None else f'{e["iou"][c]:.2f}' for e in summary.values()) + ' |')
    decoder = ', '.join(f'{k} {v}' for k, v in recipe['model_kwargs'].items())
    lines += ['', '![per-class IoU](seg_mosaics_per_class.png)', '', '## Setup', '',
              f'- Data: {mosaics["n_train"]} training canvases of {mosaics["grid"]}x{mosaics["grid"]} cells of '
              f'{mosaics["cell"]} px ({mosaics["grid"] * mosaics["cell"]} px square), each cell a Fashion-MNIST '
              f'training garment at a random offset (empty with probability {mosaics["empty_prob"]}), garments drawn '
              f'from a long tail (imbalance {mosaics["imb_factor"]}); a garment\'s pixels above {mosaics["threshold"]} '
              f'take its class, the rest is background. Test: {mosaics["n_test"]} canvases of test garments drawn '
              f'uniformly. Seed {mosaics["seed"]}; `python -m timm_paco.seg mosaics` builds them.',
              f'- Model: segmentation-models-pytorch {recipe["arch"]} ({decoder}) on timm\'s {recipe["encoder"]} '
              f'(`tu-{recipe["encoder"]}`, random init), logits at stride 4; CE + pixel PaCo adds GPaCo\'s pixel '
              f'projector (conv-BN-ReLU x 2, conv to 128) on the decoder feature.',
              f'- Same budget for both: {recipe["epochs"]} epochs, batch {recipe["batch_size"]}, SGD momentum 0.9, '
              f'lr {recipe["lr"]} with a poly schedule (power 0.9), weight decay {recipe["weight_decay"]}, random '
              f'horizontal flips, the same seeds. Loss: CE over labelled pixels, + 1.0 x pixel PaCo (alpha 0.01, '
              f'beta 1, gamma 1, temperature 0.07, up to {recipe["paco_pixels"]} pixels drawn per image: every '
              f'decoder pixel at this size).',
              '- The last-epoch checkpoint is scored (`python -m timm_paco.seg evaluate`); nothing is selected on '
              'the test set.',
              f'- Wall time: {elapsed / 60:.1f} min on {args.device} ({os.cpu_count()} cores) for '
              f'{2 * len(args.seeds)} runs, reused ones included at their reuse cost.', '']
    return lines


def write_docs(args, data_dir: str, meta: Dict, recipe: Dict, summary: Dict[str, Dict], elapsed: float):
    os.makedirs(args.docs, exist_ok=True)
    classes, pixels = meta['classes'], meta['pixels']['train']
    rare = [classes[c] for c in summary['ce']['rare_classes'] or ()]
    plot_per_class_iou(os.path.join(args.docs, 'seg_mosaics_per_class.png'),
                       {NAMES[loss]: entry['iou'] for loss, entry in summary.items()}, classes, pixels,
                       'Fashion-MNIST mosaics: per-class IoU, classes by training pixels',
                       ylabel='test IoU (%), mean over seeds')
    from timm_paco.seg.evaluate import save_predictions
    device = torch.device(args.device)
    models = {NAMES[loss]: load_seg_model(os.path.join(args.output, f'{loss}-seed{args.seeds[0]}', 'last.pth.tar'))[0]
              .to(device) for loss in summary}
    save_predictions(models, SegFolder(data_dir, 'test'), os.path.join(args.docs, 'seg_mosaics_predictions.png'),
                     device, count=6, names=classes)
    path = os.path.join(args.docs, 'seg_mosaics.md')
    write_with_discussion(path, _lines(args, meta, recipe, summary, elapsed, rare))
    print(f'  write-up {path}')
