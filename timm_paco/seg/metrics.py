"""Segmentation metrics from torchmetrics (synchronised across ranks): per-class IoU, mIoU over the classes
present in the labels or the predictions, pixel accuracy over labelled pixels, and the mIoU of the rarest classes
(fewest training pixels). Writes the per-class CSV and a per-class IoU plot."""
import csv
import math
from typing import Dict, List, Optional, Sequence

import torch

__all__ = ['SegMetrics', 'rare_classes', 'write_per_class_csv', 'plot_per_class_iou']


def rare_classes(train_pixels: Sequence[int], k: int = 3, skip: Sequence[int] = (0,)) -> List[int]:
    """The ``k`` classes with the fewest training pixels (classes in ``skip``, the background, left out)."""
    order = sorted((c for c in range(len(train_pixels)) if c not in skip), key=lambda c: (train_pixels[c], c))
    return sorted(order[:k])


class SegMetrics:
    """The segmentation evaluator (timm's evaluator API, ``SegmentationTask.create_evaluator``): ``update(logits,
    labels)`` per batch, ``summary()`` the running metrics of this process (no collectives: progress lines),
    ``compute(distributed)`` the metrics over every rank's images.

    Args:
        num_classes: C, background included.
        ignore_index: The label of unlabelled pixels.
        device: Where the running state lives (the logits' device).
        rare: The classes whose mean IoU is ``miou_rare`` (``rare_classes``); None: not reported.
    """
    default_metric = 'miou'
    metric_names = ('miou', 'pixel_acc', 'miou_rare')

    def __init__(self, num_classes: int, ignore_index: int = 255, device=None, rare: Optional[Sequence[int]] = None):
        from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
        synced = dict(sync_on_compute=False, compute_with_cache=False)  # compute() syncs when asked, never cached
        self.iou = MulticlassJaccardIndex(num_classes, average='none', ignore_index=ignore_index,
                                          zero_division=float('nan'), **synced).to(device)
        self.accuracy = MulticlassAccuracy(num_classes, average='micro', ignore_index=ignore_index,
                                           **synced).to(device)
        self.rare = list(rare) if rare else None

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor):
        """``logits [N, C, H, W]`` (or predictions [N, H, W]) against ``labels [N, H, W]``."""
        preds = logits.argmax(1) if logits.ndim == 4 else logits
        self.iou.update(preds, labels)
        self.accuracy.update(preds, labels)

    def summary(self) -> Dict:
        """This process's running ``miou``, ``pixel_acc`` (and ``miou_rare``), in %."""
        return {k: v for k, v in self._results().items() if k in self.metric_names}

    def compute(self, distributed: bool = False) -> Dict:
        """``{'miou', 'pixel_acc', 'iou': [C] (None: absent), 'miou_rare', 'rare_classes'}`` in %, over every
        rank's images when ``distributed``."""
        with self.iou.sync_context(should_sync=distributed), self.accuracy.sync_context(should_sync=distributed):
            return self._results()

    def _results(self) -> Dict:
        iou = (self.iou.compute() * 100).tolist()
        present = [v for v in iou if not math.isnan(v)]
        result = dict(miou=sum(present) / len(present) if present else float('nan'),
                      pixel_acc=float(self.accuracy.compute()) * 100,
                      iou=[None if math.isnan(v) else v for v in iou])
        if self.rare:
            rare_iou = [iou[c] for c in self.rare if not math.isnan(iou[c])]
            result['miou_rare'] = sum(rare_iou) / len(rare_iou) if rare_iou else None
            result['rare_classes'] = list(self.rare)
        return result


def write_per_class_csv(path: str, iou: Sequence[Optional[float]], names: Sequence[str],
                        train_pixels: Optional[Sequence[int]] = None):
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['class_index', 'name', 'train_pixels', 'iou'])
        for c, value in enumerate(iou):
            writer.writerow([c, names[c], '' if train_pixels is None else train_pixels[c],
                             '' if value is None else f'{value:.4f}'])


def plot_per_class_iou(path: str, series: Dict[str, Sequence[Optional[float]]], names: Sequence[str],
                       train_pixels: Optional[Sequence[int]] = None, title: str = '', ylabel: str = 'IoU (%)'):
    """Bars of per-class IoU, one bar group per class and one bar per ``series`` entry (label -> IoU [C], None:
    absent), classes in order of training pixels (most first) when they are known."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    order = list(range(len(names)))
    if train_pixels is not None:
        order.sort(key=lambda c: -train_pixels[c])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(names) * max(1, len(series) - 0.5)), 3.8))
    width = 0.8 / len(series)
    for i, (label, iou) in enumerate(series.items()):
        ax.bar([x + (i - (len(series) - 1) / 2) * width for x in range(len(order))],
               [iou[c] or 0.0 for c in order], width, label=label)
    labels = [names[c] + (f'\n{train_pixels[c]:,} px' if train_pixels is not None else '') for c in order]
    ax.set_xticks(range(len(order)), labels, rotation=60, ha='right', fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.set_title(title or 'per-class IoU (classes by training pixels)', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
