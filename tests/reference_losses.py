"""Independent dense float64 references for the losses in timm_paco.losses (tests only).

Written literally from the formulas, one anchor at a time, with explicit weight vectors over
[every centre, every contrast sample]; nothing here calls timm_paco.
"""
import torch

__all__ = ['paco_reference', 'supcon_reference', 'balanced_softmax_reference', 'dscl_reference',
           'pbsd_reference', 'focal_reference', 'class_balanced_reference', 'ldam_reference',
           'pixel_paco_reference', 'bcl_contrast_reference', 'bcl_reference', 'weighted_ce_reference',
           'inv_freq_weights', 'effective_num_weights']


def _log_prior(class_counts, num_classes):
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    assert counts.shape == (num_classes,)
    return torch.log(counts / counts.sum() + 1e-9)


def _contrast_set(features, labels, queue_features, queue_labels):
    if queue_features is None:
        return features, labels
    return torch.cat([features, queue_features]), torch.cat([labels, queue_labels])


def paco_reference(logits, features, labels, queue_features=None, queue_labels=None, *, num_classes,
                   alpha=0.05, beta=1.0, gamma=1.0, temperature=0.2, base_temperature=None,
                   label_smoothing=0.0, class_counts=None, prior_tau=1.0):
    """Returns (loss, loss_centre, loss_contrast), float64 scalars differentiable w.r.t. the inputs."""
    base_temperature = temperature if base_temperature is None else base_temperature
    logits, features = logits.double(), features.double()
    if queue_features is not None:
        queue_features = queue_features.double()
    contrast, contrast_labels = _contrast_set(features, labels, queue_features, queue_labels)
    num_anchors, num_contrast = features.shape[0], contrast.shape[0]
    prior = torch.zeros(num_classes, dtype=torch.float64)
    if class_counts is not None:
        prior = prior_tau * _log_prior(class_counts, num_classes)
    s = label_smoothing
    totals, centres, contrasts = [], [], []
    for i in range(num_anchors):
        # scores: C centre logits, then one similarity per contrast sample j != i
        keep = torch.tensor([j != i for j in range(num_contrast)], dtype=torch.bool)
        centre_scores = logits[i] + prior
        sample_scores = (contrast[keep] * features[i]).sum(dim=1) / temperature
        # denominator: every centre term + gamma * every sample term (shifted by the max for stability)
        shift = torch.cat([centre_scores, sample_scores]).max().detach()
        denom = shift + torch.log(
            torch.exp(centre_scores - shift).sum() + gamma * torch.exp(sample_scores - shift).sum())
        log_p_centre = centre_scores - denom
        log_p_sample = sample_scores - denom
        # positive weights
        w_centre = torch.zeros(num_classes, dtype=torch.float64)
        for c in range(num_classes):
            if c == labels[i]:
                w_centre[c] = beta * (1.0 - s)
            else:
                w_centre[c] = beta * s / (num_classes - 1) if s > 0 else 0.0
        w_sample = alpha * (contrast_labels[keep] == labels[i]).double()
        weight_sum = w_centre.sum() + w_sample.sum()
        if weight_sum == 0:
            continue
        scale = -temperature / base_temperature
        centre_part = scale * (w_centre * log_p_centre).sum() / weight_sum
        contrast_part = scale * (w_sample * log_p_sample).sum() / weight_sum
        centres.append(centre_part)
        contrasts.append(contrast_part)
        totals.append(centre_part + contrast_part)
    if not totals:
        zero = (logits.sum() + features.sum()) * 0.0
        return zero, zero, zero
    return torch.stack(totals).mean(), torch.stack(centres).mean(), torch.stack(contrasts).mean()


def supcon_reference(features, labels, queue_features=None, queue_labels=None, *, temperature=0.07,
                     base_temperature=None):
    """Mean over anchors with >= 1 positive of −(T/base_T) · mean_{pos j} log softmax_{j≠i}(f_i·k_j / T)."""
    base_temperature = temperature if base_temperature is None else base_temperature
    features = features.double()
    if queue_features is not None:
        queue_features = queue_features.double()
    contrast, contrast_labels = _contrast_set(features, labels, queue_features, queue_labels)
    per_anchor = []
    for i in range(features.shape[0]):
        keep = torch.tensor([j != i for j in range(contrast.shape[0])], dtype=torch.bool)
        positive = contrast_labels[keep] == labels[i]
        if not positive.any():
            continue
        scores = (contrast[keep] * features[i]).sum(dim=1) / temperature
        log_prob = scores - torch.log(torch.exp(scores - scores.max().detach()).sum()) - scores.max().detach()
        per_anchor.append(-(temperature / base_temperature) * log_prob[positive].mean())
    if not per_anchor:
        return features.sum() * 0.0
    return torch.stack(per_anchor).mean()


def balanced_softmax_reference(logits, labels, class_counts, tau=1.0, label_smoothing=0.0):
    """Mean over rows of −Σ_c t_c log softmax(z + tau·log p)_c with t = (1−s)·onehot + s/C."""
    logits = logits.double()
    num_classes = logits.shape[1]
    adjusted = logits + tau * _log_prior(class_counts, num_classes)
    losses = []
    for i in range(logits.shape[0]):
        log_prob = adjusted[i] - torch.logsumexp(adjusted[i], dim=0)
        target = torch.full((num_classes,), label_smoothing / num_classes, dtype=torch.float64)
        target[labels[i]] += 1.0 - label_smoothing
        losses.append(-(target * log_prob).sum())
    return torch.stack(losses).mean()


def paco_dense_reference(logits, features, labels, queue_features, queue_labels, *, num_classes, alpha=0.05,
                         beta=1.0, gamma=1.0, temperature=0.2, label_smoothing=0.0, class_counts=None):
    """The same PaCo loss, vectorised with dense float64 weight / denominator masks over [A, C + A + N]
    (for sizes too large for the per-anchor loop). Returns the loss."""
    logits, features, queue_features = logits.double(), features.double(), queue_features.double()
    num_anchors = features.shape[0]
    contrast = torch.cat([features, queue_features])
    contrast_labels = torch.cat([labels, queue_labels])
    prior = _log_prior(class_counts, num_classes) if class_counts is not None else 0.0
    scores = torch.cat([logits + prior, features @ contrast.t() / temperature], dim=1)
    not_self = torch.ones(num_anchors, contrast.shape[0], dtype=torch.float64)
    not_self[torch.arange(num_anchors), torch.arange(num_anchors)] = 0.0
    denom_mask = torch.cat([torch.ones(num_anchors, num_classes, dtype=torch.float64), gamma * not_self], dim=1)
    shift = scores.max(dim=1, keepdim=True)[0].detach()
    log_prob = scores - shift - torch.log((torch.exp(scores - shift) * denom_mask).sum(dim=1, keepdim=True))
    one_hot = torch.nn.functional.one_hot(labels, num_classes).double()
    centre_weight = beta * (one_hot * (1 - label_smoothing) + (1 - one_hot) * label_smoothing / (num_classes - 1))
    sample_weight = alpha * (labels[:, None] == contrast_labels[None, :]).double() * not_self
    weight = torch.cat([centre_weight, sample_weight], dim=1)
    return (-(weight * log_prob).sum(dim=1) / weight.sum(dim=1)).mean()


def dscl_reference(queries, labels, keys_and_queue, keys_and_queue_labels, *, alpha=1 / 9, temperature=0.07):
    """DSCL, one anchor at a time: contrast set = the other queries, then every key / queue row; the own key is
    row i of ``keys_and_queue``; the class positives are the other members with the anchor's label.
    L_i = −α s⁺ − (1−α) mean_P s + logsumexp_C s (α = 1 for an anchor without class positives); mean over i."""
    queries, bank = queries.double(), keys_and_queue.double()
    num = queries.shape[0]
    per_anchor = []
    for i in range(num):
        members, member_labels, own_index = [], [], None
        for j in range(num):
            if j != i:
                members.append(queries[j])
                member_labels.append(int(labels[j]))
        for j in range(bank.shape[0]):
            if j == i:
                own_index = len(members)
            members.append(bank[j])
            member_labels.append(int(keys_and_queue_labels[j]))
        sims = torch.stack([torch.dot(queries[i], m) / temperature for m in members])
        lse = torch.logsumexp(sims, dim=0)
        own = sims[own_index]
        positives = [sims[t] for t in range(len(members)) if t != own_index and member_labels[t] == int(labels[i])]
        if positives:
            loss = -alpha * own - (1 - alpha) * torch.stack(positives).mean() + lse
        else:
            loss = -own + lse
        per_anchor.append(loss)
    return torch.stack(per_anchor).mean()


def pbsd_reference(teacher, student, keys, queue, *, temperature=0.07):
    """PBSD, one (patch j, image i) at a time: candidates = image i's key, then every queue row; the teacher's
    softmax over them is the target of the student's log-softmax (cross-entropy), teacher held constant; mean."""
    teacher, student, keys, queue = teacher.double().detach(), student.double(), keys.double(), queue.double()
    terms = []
    for j in range(student.shape[0]):
        for i in range(student.shape[1]):
            candidates = torch.cat([keys[i:i + 1], queue])
            target = torch.softmax(torch.stack([torch.dot(teacher[j, i], z) for z in candidates]) / temperature, 0)
            log_prob = torch.log_softmax(torch.stack([torch.dot(student[j, i], z) for z in candidates])
                                         / temperature, 0)
            terms.append(-(target * log_prob).sum())
    return torch.stack(terms).mean()


def focal_reference(logits, labels, gamma=1.0):
    """Mean over rows of −(1 − p_y)^γ log p_y, p = softmax(logits), row by row in float64."""
    losses = []
    for z, y in zip(logits.double(), labels.tolist()):
        p = torch.exp(z[y]) / torch.exp(z).sum()
        losses.append(-(1 - p) ** gamma * torch.log(p))
    return torch.stack(losses).mean()


def class_balanced_reference(logits, labels, class_counts, beta=0.9999):
    """Σ_i w_{y_i} CE_i / Σ_i w_{y_i}, w_c = (1 − β) / (1 − β^{n_c}) scaled to sum to the classes with images."""
    raw = [(1 - beta) / (1 - beta ** n) if n > 0 else 0.0 for n in class_counts]
    present = sum(1 for n in class_counts if n > 0)
    weights = [w * present / sum(raw) for w in raw]
    num, den = 0.0, 0.0
    for z, y in zip(logits.double(), labels.tolist()):
        ce = torch.log(torch.exp(z).sum()) - z[y]
        num, den = num + weights[y] * ce, den + weights[y]
    return num / den


def weighted_ce_reference(logits, labels, class_weight, label_smoothing=0.0):
    """Σ_i ℓ_i / Σ_i w_{y_i} with ℓ_i = Σ_c t_{i,c} · w_c · (−log p_{i,c}), t = (1 − s)·onehot + s/C."""
    num_classes = logits.shape[1]
    w = [float(v) for v in class_weight]
    num, den = 0.0, 0.0
    for z, y in zip(logits.double(), labels.tolist()):
        log_z = torch.log(torch.exp(z).sum())
        for c in range(num_classes):
            t = label_smoothing / num_classes + (1.0 - label_smoothing if c == y else 0.0)
            num = num + t * w[c] * (log_z - z[c])
        den += w[y]
    return num / den


def inv_freq_weights(class_counts, power=1.0):
    """(N / n_c)^power over the mean of those (a class without images counted as one), float64."""
    total = float(sum(class_counts))
    raw = [(total / max(n, 1)) ** power for n in class_counts]
    return torch.tensor([r * len(raw) / sum(raw) for r in raw], dtype=torch.float64)


def effective_num_weights(class_counts, beta=0.999):
    """(1 − β) / (1 − β^{n_c}) over their mean (a class without images counted as one), float64."""
    raw = [(1 - beta) / (1 - beta ** max(n, 1)) for n in class_counts]
    return torch.tensor([r * len(raw) / sum(raw) for r in raw], dtype=torch.float64)


def ldam_reference(cosines, labels, class_counts, max_margin=0.5, scale=30.0, weights=None):
    """Σ_i w_{y_i} CE_i / Σ_i w_{y_i} of s · (cos − m_y onehot), m_c = max_margin · n_c^(−1/4) / max_c n_c^(−1/4)."""
    raw = [n ** -0.25 for n in class_counts]
    margins = [max_margin * r / max(raw) for r in raw]
    weights = weights or [1.0] * len(class_counts)
    num, den = 0.0, 0.0
    for z, y in zip(cosines.double(), labels.tolist()):
        z = scale * (z - torch.nn.functional.one_hot(torch.tensor(y), len(class_counts)).double() * margins[y])
        ce = torch.log(torch.exp(z).sum()) - z[y]
        num, den = num + weights[y] * ce, den + weights[y]
    return num / den


def pixel_paco_reference(embed, seg_logit, labels, *, num_classes, alpha=0.01, beta=1.0, gamma=1.0,
                         temperature=0.07, base_temperature=None, num_pixels=None, ignore_index=255, seed=None):
    """GPaCo's pixel PaCo loss, one image and one anchor at a time in float64. Labels [N, H, W] go to the logits'
    size by nearest neighbour (source index floor(i * H / h)); with ``num_pixels`` K < h·w each image in turn draws
    ``torch.randperm(h·w, generator)[:K]`` from a CPU generator seeded with ``seed``."""
    base_temperature = temperature if base_temperature is None else base_temperature
    n, _, h, w = seg_logit.shape
    big_h, big_w = labels.shape[1:]
    rows = [int(i * big_h / h) for i in range(h)]
    cols = [int(j * big_w / w) for j in range(w)]
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        lab = labels[i][rows][:, cols].reshape(-1).long()
        z = embed[i].double().reshape(embed.shape[1], -1).t()
        z = z / z.norm(dim=1, keepdim=True)
        logit = seg_logit[i].double().reshape(num_classes, -1).t()
        drawn = list(range(h * w)) if num_pixels is None or num_pixels >= h * w else \
            torch.randperm(h * w, generator=generator)[:num_pixels].tolist()
        anchor_losses = []
        for p in drawn:
            y = int(lab[p])
            if not (0 <= y < num_classes) or y == ignore_index:
                continue
            others = [q for q in drawn if q != p]
            sims = [z[p] @ z[q] / temperature for q in others]
            denom = sum(torch.exp(logit[p, c]) for c in range(num_classes)) + gamma * sum(torch.exp(s) for s in sims)
            log_d = torch.log(denom)
            weighted, weights = beta * (logit[p, y] - log_d), beta
            for q, s in zip(others, sims):
                if int(lab[q]) == y:
                    weighted, weights = weighted + alpha * (s - log_d), weights + alpha
            loss_p = -(temperature / base_temperature) * (weighted / weights if weights > 0 else weighted * 0)
            anchor_losses.append(loss_p)
        if anchor_losses:
            total = total + sum(anchor_losses) / len(anchor_losses)
    return total / n


def bcl_contrast_reference(features, labels, centres, *, temperature=0.07):
    """BCL's balanced contrastive loss, one anchor at a time: the contrast set is every embedding and every centre
    (centre c has label c); the denominator sums, for each class, the mean of exp(f_i . k_j / T) over that class's
    members other than the anchor; the positives are the anchor's class's members other than itself."""
    features, centres = features.double(), centres.double()
    contrast = torch.cat([features, centres])
    contrast_labels = torch.cat([labels, torch.arange(centres.shape[0])]).tolist()
    losses = []
    for i in range(features.shape[0]):
        others = [j for j in range(contrast.shape[0]) if j != i]
        sims = {j: features[i] @ contrast[j] / temperature for j in others}
        denominator = 0
        for c in sorted(set(contrast_labels)):
            members = [j for j in others if contrast_labels[j] == c]
            if members:
                denominator = denominator + sum(torch.exp(sims[j]) for j in members) / len(members)
        positives = [j for j in others if contrast_labels[j] == int(labels[i])]
        losses.append(-sum(sims[j] - torch.log(denominator) for j in positives) / len(positives))
    return torch.stack(losses).mean()


def bcl_reference(logits, features, labels, centres, class_counts, *, prior_tau=1.0, contrast_weight=0.35,
                  temperature=0.07, label_smoothing=0.0):
    """BCL's total: logit-adjusted CE of ``logits [B, C]`` + contrast_weight x the balanced contrastive loss of
    ``features [V·B, D]`` (view-major, labels repeated) and ``centres``; returns (loss, ce, contrast)."""
    ce = balanced_softmax_reference(logits, labels, class_counts, tau=prior_tau, label_smoothing=label_smoothing)
    views = features.shape[0] // labels.shape[0]
    contrast = bcl_contrast_reference(features, labels.repeat(views), centres, temperature=temperature)
    return ce + contrast_weight * contrast, ce, contrast
