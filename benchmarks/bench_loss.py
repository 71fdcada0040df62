"""PaCo, DSCL and pixel PaCo losses: forward + backward time and peak memory, fast (timm_paco.losses) vs dense.

The dense baselines are the straightforward float32 formulas the reference implementations use. PaCo:
concatenate centre logits and similarities, build float masks for positives / self-exclusion / gamma,
exp · mask, log, weighted mean. DSCL (``--loss dscl``): the official code's layout, every query against
cat(queries, keys, queue) with float masks for same-label, self-exclusion and the β class weights. Pixel PaCo
(``--loss pixel``; --anchors = images N, --queue = pixels K per image): the same float-mask layout per image,
cat(segmentation logits, similarities) [K, C + K]. Peak memory is what one forward + backward allocates above what was allocated before it:
on the CPU the running sum of torch.profiler's allocation / free events, on CUDA the allocator's peak
statistic. CUDA times synchronise the device around each run; TF32 matmuls are off (float32 both).

    python benchmarks/bench_loss.py                 # both configurations of docs/benchmarks.md
    python benchmarks/bench_loss.py --threads 1      # the same on one thread
    python benchmarks/bench_loss.py --device cuda    # on a GPU
    python benchmarks/bench_loss.py --anchors 64 --queue 1024 --classes 100 --dim 32
    python benchmarks/bench_loss.py --loss dscl     # DSCL at A=256, K=65536, D=128 (ImageNet-LT's queue)
    python benchmarks/bench_loss.py --loss pixel --repeats 3   # pixel PaCo at N=8, K=8192, C=150, D=128 (ADE20K)
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from torch.profiler import ProfilerActivity, profile

from timm_paco.arg_types import non_negative_int, positive_float, positive_int
from timm_paco.losses import DSCLLoss, PaCoLoss, PixelPaCoLoss
from timm_paco.profiling import peak_allocated_bytes

DOCS_CONFIGS = {  # (anchors, queue, classes, dim)
    'paco': ((256, 8192, 1000, 128), (128, 8192, 8142, 128)),
    'dscl': ((256, 65536, 1000, 128),),
    'pixel': ((8, 8192, 150, 128),),  # (images N, pixels K per image, classes, dim): GPaCo's ADE20K setting
}
SINGLE_DEFAULT = DOCS_CONFIGS['paco'][0]


def dense_paco_loss(logits, features, labels, queue, queue_labels, log_prior,
                    alpha=0.05, beta=1.0, gamma=1.0, temperature=0.2, label_smoothing=0.0):
    num_anchors, num_classes = logits.shape
    contrast = torch.cat([features, queue])
    contrast_labels = torch.cat([labels, queue_labels])
    same_label = torch.eq(labels[:, None], contrast_labels[None, :]).float()
    not_self = torch.ones_like(same_label).scatter(1, torch.arange(num_anchors, device=labels.device)[:, None], 0.0)
    sims = features @ contrast.t() / temperature
    scores = torch.cat([logits + log_prior, sims], dim=1)
    scores = scores - scores.max(dim=1, keepdim=True)[0].detach()
    one_hot = F.one_hot(labels, num_classes).float()
    if label_smoothing > 0:
        one_hot = one_hot * (1 - label_smoothing) + (1 - one_hot) * label_smoothing / (num_classes - 1)
    pos_weight = torch.cat([beta * one_hot, alpha * same_label * not_self], dim=1)
    denom_mask = torch.cat([torch.ones_like(one_hot), gamma * not_self], dim=1)
    log_prob = scores - torch.log((torch.exp(scores) * denom_mask).sum(dim=1, keepdim=True) + 1e-12)
    mean_log_prob_pos = (pos_weight * log_prob).sum(dim=1) / pos_weight.sum(dim=1)
    return -mean_log_prob_pos.mean()


def dense_dscl_loss(queries, labels, keys, queue, queue_labels, beta=8.0, temperature=0.07):
    """DSCL as the official code computes it: anchors = the queries, contrast = cat(queries, keys, queue)."""
    anchors = queries.shape[0]
    contrast = torch.cat([queries, keys, queue])
    contrast_labels = torch.cat([labels, labels, queue_labels])
    same_label = torch.eq(labels[:, None], contrast_labels[None, :]).float()
    rows = torch.arange(anchors, device=labels.device)[:, None]
    not_self = torch.ones_like(same_label).scatter(1, rows, 0.0)
    sims = queries @ contrast.t() / temperature
    sims = sims - sims.max(dim=1, keepdim=True)[0].detach()
    positives = same_label * not_self
    weights = torch.ones_like(positives) / (positives.sum(dim=1, keepdim=True) - 1.0 + 1e-12) * beta
    weights = weights.scatter(1, rows + anchors, 1.0)  # the own key: weight 1, the class positives beta / |P|
    log_prob = sims - torch.log((torch.exp(sims) * not_self).sum(dim=1, keepdim=True) + 1e-12)
    return -((positives * weights * log_prob).sum(dim=1) / (positives * weights).sum(dim=1)).mean()


def dense_pixel_paco_loss(embed, seg_logit, labels, alpha=0.01, beta=1.0, gamma=1.0, temperature=0.07,
                          ignore_index=255):
    """Pixel PaCo with every pixel drawn, per image in the float-mask layout: scores cat(logits, similarities)
    [K, C + K], masks for the true class, same-class pixels, self-exclusion and gamma; exp · mask, log, weighted
    mean over anchors, then the mean over images."""
    n, num_classes = seg_logit.shape[:2]
    total = 0.0
    for i in range(n):
        z = F.normalize(embed[i].flatten(1).t(), dim=1)
        logits, y = seg_logit[i].flatten(1).t(), labels[i].flatten()
        anchor = (y < num_classes) & (y != ignore_index)
        za, la, ya = z[anchor], logits[anchor], y[anchor]
        rows = torch.arange(za.shape[0], device=z.device)
        not_self = torch.ones(za.shape[0], z.shape[0], device=z.device)
        not_self[rows, anchor.nonzero()[:, 0]] = 0.0
        same = torch.eq(ya[:, None], y[None, :]).float() * not_self
        scores = torch.cat([la, za @ z.t() / temperature], dim=1)
        scores = scores - scores.max(dim=1, keepdim=True)[0].detach()
        weight = torch.cat([beta * F.one_hot(ya, num_classes).float(), alpha * same], dim=1)
        denom = torch.cat([torch.ones_like(la), gamma * not_self], dim=1)
        log_prob = scores - torch.log((torch.exp(scores) * denom).sum(dim=1, keepdim=True))
        total = total - ((weight * log_prob).sum(1) / weight.sum(1)).mean()
    return total / n


def _pixel_losses(images, pixels, classes, dim, device):
    """Pixel PaCo's leaves and calls: every pixel of an h x w = K map drawn (the same pixels in both)."""
    g = torch.Generator().manual_seed(0)
    h = int(pixels ** 0.5)
    while pixels % h:
        h -= 1
    embed = torch.randn(images, dim, h, pixels // h, generator=g).to(device).requires_grad_()
    seg_logit = torch.randn(images, classes, h, pixels // h, generator=g).to(device).requires_grad_()
    labels = (torch.rand(images, h, pixels // h, generator=g) ** 2 * classes).long()  # a long tail of classes
    labels[torch.rand(labels.shape, generator=g) < 0.1] = 255
    labels = labels.to(device)
    crit = PixelPaCoLoss(classes, num_pixels=pixels)
    return ((embed, seg_logit), lambda: crit(embed, seg_logit, labels),
            lambda: dense_pixel_paco_loss(embed, seg_logit, labels))


def make_inputs(anchors, queue_size, classes, dim, seed=0, device='cpu'):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(anchors, classes, generator=g)
    features = F.normalize(torch.randn(anchors, dim, generator=g), dim=1)
    labels = torch.randint(0, classes, (anchors,), generator=g)
    # long-tailed labels for the queue so that positives exist (as with a real LT queue)
    queue_labels = (torch.rand(queue_size, generator=g) ** 3 * classes).long()
    queue = F.normalize(torch.randn(queue_size, dim, generator=g), dim=1)  # momentum-encoder side: no grad
    counts = torch.bincount(queue_labels, minlength=classes)
    logits, features = (t.to(device).requires_grad_() for t in (logits, features))  # the loss's inputs with grad
    return logits, features, labels.to(device), queue.to(device), queue_labels.to(device), counts


def _print_profile(fn, device):
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    for _ in range(3):
        fn()
    with profile(activities=activities) as prof:
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
    sort = 'device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    print(prof.key_averages().table(sort_by=sort, row_limit=25))


def _losses(loss, anchors, queue_size, classes, dim, device):
    """(leaf tensors with gradients, fast loss call, dense loss call) of ``loss`` at one configuration."""
    if loss == 'pixel':
        return _pixel_losses(anchors, queue_size, classes, dim, device)
    logits, features, labels, queue, queue_labels, counts = make_inputs(anchors, queue_size, classes, dim,
                                                                        device=device)
    if loss == 'dscl':  # the queries' own keys: the momentum side, no gradient
        keys = F.normalize(features.detach() + 0.1 * torch.randn_like(features), dim=1)
        crit = DSCLLoss(alpha=1 / 9, temperature=0.07).to(device)
        bank, bank_labels = torch.cat([keys, queue]), torch.cat([labels, queue_labels])
        return ((features,), lambda: crit(None, features, labels, bank, bank_labels),
                lambda: dense_dscl_loss(features, labels, keys, queue, queue_labels))
    crit = PaCoLoss(classes, class_counts=counts).to(device)
    log_prior = crit.log_prior.float()
    return ((logits, features), lambda: crit(logits, features, labels, queue, queue_labels),
            lambda: dense_paco_loss(logits, features, labels, queue, queue_labels, log_prior))


def bench(args, anchors, queue_size, classes, dim):
    device = torch.device(args.device)
    leaves, fast_loss, dense_loss = _losses(args.loss, anchors, queue_size, classes, dim, device)

    def run_fast():
        fast_loss().backward()

    def run_dense():
        dense_loss().backward()

    def clear():
        for t in leaves:
            t.grad = None

    # agreement (float32 both)
    results = {}
    for name, fn in (('fast', fast_loss), ('dense', dense_loss)):
        clear()
        loss = fn()
        loss.backward()
        results[name] = (loss.detach(),) + tuple(t.grad.clone() for t in leaves)
    diffs = [(a - b).abs().max().item() for a, b in zip(results['fast'], results['dense'])]
    if args.profile:
        _print_profile(run_fast, device)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    def timed(fn):
        clear()
        sync()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        return time.perf_counter() - start, time.process_time() - start_cpu

    for _ in range(args.warmup):
        timed(run_fast), timed(run_dense)
    fast_t, dense_t = [], []
    for _ in range(args.repeats):  # interleaved, so background load hits both alike
        fast_t.append(timed(run_fast))
        dense_t.append(timed(run_dense))
    clear()
    fast_mem = peak_allocated_bytes(run_fast, device)
    clear()
    dense_mem = peak_allocated_bytes(run_dense, device)
    fast_ms, dense_ms = (1e3 * statistics.median(t[0] for t in ts) for ts in (fast_t, dense_t))
    fast_cpu, dense_cpu = (1e3 * statistics.median(t[1] for t in ts) for ts in (fast_t, dense_t))
    fast_min, dense_min = (1e3 * min(t[0] for t in ts) for ts in (fast_t, dense_t))
    return dict(
        config=(f'pixel N={anchors} K={queue_size} C={classes} D={dim}' if args.loss == 'pixel' else
                f'{args.loss} A={anchors} N={queue_size} C={classes} D={dim}'),
        dense_ms=dense_ms, fast_ms=fast_ms, speedup=dense_ms / fast_ms, cpu_speedup=dense_cpu / fast_cpu,
        dense_min=dense_min, fast_min=fast_min,
        dense_mib=dense_mem / 2 ** 20, fast_mib=fast_mem / 2 ** 20, mem_ratio=dense_mem / fast_mem,
        max_diff=max(diffs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    single = ' (one configuration: with any of --anchors / --queue / --classes / --dim, the others default to ' \
        f'A={SINGLE_DEFAULT[0]} N={SINGLE_DEFAULT[1]} C={SINGLE_DEFAULT[2]} D={SINGLE_DEFAULT[3]}; without them, ' \
        'the two configurations of docs/benchmarks.md)'
    parser.add_argument('--loss', default='paco', choices=sorted(DOCS_CONFIGS), help='loss to time (default: paco)')
    parser.add_argument('--anchors', type=positive_int, default=None, help='anchors A' + single)
    parser.add_argument('--queue', type=positive_int, default=None, help='queue slots N')
    parser.add_argument('--classes', type=positive_int, default=None, help='classes C')
    parser.add_argument('--dim', type=positive_int, default=None, help='embedding width D')
    parser.add_argument('--warmup', type=non_negative_int, default=3)
    parser.add_argument('--repeats', type=positive_int, default=15)
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--profile', action='store_true', help="print torch.profiler's table of the fast loss")
    parser.add_argument('--max-diff-tol', type=positive_float, default=1e-4,
                        help='fail if fast and dense disagree by more')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    given = (args.anchors, args.queue, args.classes, args.dim)
    if all(v is None for v in given):
        configs = list(DOCS_CONFIGS[args.loss])
    else:
        configs = [tuple(d if v is None else v for v, d in zip(given, SINGLE_DEFAULT))]
    where = torch.cuda.get_device_name() if args.device.startswith('cuda') else f'{torch.get_num_threads()} threads'
    print(f'torch {torch.__version__}, {where}, float32, forward + backward, '
          f'median of {args.repeats} after {args.warmup} warm-up')
    print('| config | dense ms | fast ms | speed-up (wall) | speed-up (CPU time) | min dense / fast ms '
          '| speed-up (min) | dense peak MiB | fast peak MiB | memory ratio | max abs diff |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for cfg in configs:
        r = bench(args, *cfg)
        if r['max_diff'] > args.max_diff_tol:
            raise SystemExit(f"fast and dense disagree by {r['max_diff']:.2e} at {r['config']}")
        print(f"| {r['config']} | {r['dense_ms']:.1f} | {r['fast_ms']:.1f} | {r['speedup']:.2f}x | "
              f"{r['cpu_speedup']:.2f}x | "
              f"{r['dense_min']:.1f} / {r['fast_min']:.1f} | {r['dense_min'] / r['fast_min']:.2f}x | "
              f"{r['dense_mib']:.1f} | {r['fast_mib']:.1f} | {r['mem_ratio']:.2f}x | {r['max_diff']:.1e} |")


if __name__ == '__main__':
    from timm_paco.cli.errors import run_main
    sys.exit(run_main(main, 'bench_loss.py'))
