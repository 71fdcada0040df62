"""Scoring a segmentation model: each rank's share of the images (``eval_loader``, the trainer's too), the
evaluation pass of ``python -m timm_paco.seg evaluate``, the results files and a picture of predictions."""
import json
import os
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from timm_paco.seg.dataset import SegFolder, read_class_names
from timm_paco.seg.metrics import SegMetrics, plot_per_class_iou, rare_classes, write_per_class_csv

__all__ = ['evaluate', 'eval_loader', 'write_results', 'save_predictions', 'train_pixels_of', 'main']


def eval_loader(dataset, batch_size: int, workers: int, rank: int = 0, world_size: int = 1):
    """Rank ``rank``'s images ``rank::world_size``, in order: every image scored once over all ranks."""
    shard = torch.utils.data.Subset(dataset, list(range(rank, len(dataset), world_size)))
    return torch.utils.data.DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers)


@torch.no_grad()
def evaluate(model, loader, device, num_classes: int, ignore_index: int = 255, amp_dtype=None,
             rare: Optional[Sequence[int]] = None) -> Dict:
    """mIoU, pixel accuracy and per-class IoU (%) of ``model`` (eval mode: logits at the input size)."""
    was_training = model.training
    model.eval()
    metrics = SegMetrics(num_classes, ignore_index, device, rare)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        with autocast:
            logits = model(images)
        metrics.update(logits.float(), labels)
    model.train(was_training)
    return metrics.compute()


def train_pixels_of(data_dir: str, split: str, num_classes: int) -> Optional[List[int]]:
    """Labelled pixels per class of a split: a mosaic set's record, else counted from its label maps."""
    meta = os.path.join(data_dir, 'mosaics.json')
    if os.path.isfile(meta):
        with open(meta) as f:
            pixels = json.load(f).get('pixels', {}).get(split)
        if pixels is not None and len(pixels) == num_classes:
            return pixels
    folder = os.path.join(data_dir, split)
    if not os.path.isdir(folder):
        return None
    dataset = SegFolder(data_dir, split)
    counts = np.zeros(num_classes, np.int64)
    for i in range(len(dataset)):
        mask = dataset.read(i)[1]
        counts += np.bincount(mask[mask < num_classes].ravel(), minlength=num_classes)
    return counts.tolist()


def write_results(results: Dict, path: str, names: Sequence[str], train_pixels: Optional[Sequence[int]] = None,
                  title: str = ''):
    """``path`` (JSON) with ``<stem>_per_class.csv`` and ``<stem>_per_class.png`` beside it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stem = os.path.splitext(path)[0]
    with open(path, 'w') as f:
        json.dump(results, f, indent=2)
    write_per_class_csv(stem + '_per_class.csv', results['iou'], names, train_pixels)
    plot_per_class_iou(stem + '_per_class.png', {'IoU': results['iou']}, names, train_pixels, title)


def _palette(num_classes: int) -> np.ndarray:
    import matplotlib
    colors = matplotlib.colormaps['tab20'](np.linspace(0, 1, 20))[:, :3]
    table = np.zeros((256, 3))
    table[1:num_classes] = colors[np.arange(num_classes - 1) % 20]
    table[255] = 1.0  # ignored: white
    return table


@torch.no_grad()
def save_predictions(models: Dict[str, torch.nn.Module], dataset: SegFolder, path: str, device, count: int = 6,
                     names: Optional[Sequence[str]] = None):
    """A grid of ``count`` images: image, labels, then each of ``models``' predictions (colours per class)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    num_classes = next(iter(models.values())).num_classes
    palette = _palette(num_classes)
    columns = ['image', 'labels'] + list(models)
    fig, axes = plt.subplots(count, len(columns), figsize=(1.9 * len(columns), 1.9 * count), squeeze=False)
    for row in range(min(count, len(dataset))):
        image, mask = dataset.read(row)
        x = dataset[row][0][None].to(device)
        panels = [image, palette[mask]]
        for model in models.values():
            model.eval()
            panels.append(palette[model(x).argmax(1)[0].cpu().numpy()])
        for ax, panel, title in zip(axes[row], panels, columns):
            ax.imshow(panel, interpolation='nearest')
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
    if names:
        handles = [matplotlib.patches.Patch(color=palette[c], label=names[c]) for c in range(1, num_classes)]
        fig.legend(handles=handles, loc='lower center', ncol=min(5, num_classes - 1), fontsize=7)
    fig.tight_layout(rect=(0, 0.06 if names else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    from timm_paco.cli.inputs import resolve_device
    from timm_paco.seg.args import build_eval_parser
    from timm_paco.seg.checkpoint import load_seg_model
    args = build_eval_parser().parse_args(argv)
    device = torch.device(resolve_device(args.device))
    model, saved = load_seg_model(args.checkpoint, encoder=args.encoder, arch=args.arch, num_classes=args.num_classes,
                                  model_kwargs=args.model_kwargs)
    model.to(device)
    names = read_class_names(args.data_dir) or [str(c) for c in range(model.num_classes)]
    if len(names) != model.num_classes:
        raise ValueError(f'--data-dir {args.data_dir}: {len(names)} class names, the checkpoint has '
                         f'{model.num_classes} classes')
    dataset = SegFolder(args.data_dir, args.split)
    train_pixels = train_pixels_of(args.data_dir, saved.get('train_split', 'train'), model.num_classes)
    rare = rare_classes(train_pixels) if train_pixels else None
    amp_dtype = getattr(torch, args.amp_dtype) if args.amp else None
    results = evaluate(model, eval_loader(dataset, args.batch_size, args.workers), device, model.num_classes,
                       args.ignore_index, amp_dtype, rare)
    results.update(checkpoint=args.checkpoint, split=args.split, images=len(dataset))
    rare_text = f', rare classes {results["miou_rare"]:.2f}' if results.get('miou_rare') is not None else ''
    print(f'{args.checkpoint}: mIoU {results["miou"]:.2f}{rare_text}, pixel accuracy {results["pixel_acc"]:.2f} '
          f'({len(dataset)} {args.split} images)')
    if args.results_file:
        write_results(results, args.results_file, names, train_pixels, title=os.path.basename(args.checkpoint))
    if args.predictions:
        save_predictions({'prediction': model}, dataset, args.predictions, device, args.num_predictions, names)
    return results
