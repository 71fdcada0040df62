"""Per-class accuracy against training frequency (PNG). matplotlib is imported only when plotting."""
from typing import Dict, Optional, Sequence

SPLIT_COLOURS = {'many': 'tab:blue', 'medium': 'tab:orange', 'few': 'tab:red'}


def plot_per_class_accuracy(
        rows: Sequence[Dict],
        path: str,
        many_thr: int = 100,
        few_thr: int = 20,
        title: Optional[str] = None,
):
    """Scatter of accuracy (%) against training images per class (log x), coloured by split, with the
    split thresholds as vertical lines. ``rows`` as from ``timm_paco.data.metrics.per_class_rows``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    rows = [r for r in rows if r['accuracy'] is not None and r['train_count'] is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    for split, colour in SPLIT_COLOURS.items():
        pts = [r for r in rows if r['split'] == split]
        if pts:
            ax.scatter(
                [max(r['train_count'], 1) for r in pts], [r['accuracy'] for r in pts],
                s=12, c=colour, label=f'{split} ({len(pts)} classes)')
    ax.axvline(many_thr + 0.5, color='grey', ls='--', lw=0.8)
    ax.axvline(few_thr - 0.5, color='grey', ls=':', lw=0.8)
    ax.set_xscale('log')
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel('training images per class')
    ax.set_ylabel('top-1 accuracy (%)')
    ax.set_ylim(-2, 102)
    if title:
        ax.set_title(title)
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(bins: Sequence[Dict], path: str, ece: Optional[float] = None, title: Optional[str] = None):
    """Reliability diagram: accuracy against mean confidence per bin (bars over the bin ranges, the diagonal of
    perfect calibration, the share of images per bin below). ``bins`` as ``CalibrationMeter.reliability_bins()``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    total = sum(b['count'] for b in bins) or 1
    fig, (ax, share) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw=dict(height_ratios=(3, 1)))
    width = bins[0]['high'] - bins[0]['low'] if bins else 1.0
    full = [b for b in bins if b['count']]
    ax.bar([b['low'] for b in full], [100 * b['accuracy'] for b in full], width=width, align='edge',
           edgecolor='black', color='tab:blue', label='accuracy')
    ax.plot([0, 1], [0, 100], '--', color='grey', label='perfect calibration')
    ax.scatter([b['confidence'] for b in full], [100 * b['confidence'] for b in full], color='tab:red', s=12,
               zorder=3, label='mean confidence')
    ax.set_ylabel('accuracy (%)')
    ax.set_ylim(0, 100)
    ax.legend(loc='upper left', fontsize=8)
    ax.set_title((title + ': ' if title else '') + ('reliability' if ece is None else f'reliability, ECE {ece:.2f}%'))
    share.bar([b['low'] for b in bins], [100 * b['count'] / total for b in bins], width=width, align='edge',
              color='tab:grey')
    share.set_xlabel('top-1 confidence')
    share.set_ylabel('images (%)')
    share.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
