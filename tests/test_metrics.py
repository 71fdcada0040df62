import pytest
import torch
from timm.utils import accuracy

from timm_paco.data.metrics import LongTailMeter, class_splits, long_tail_accuracy, per_class_rows


def test_class_splits_thresholds():
    counts = [150, 101, 100, 20, 19, 0]
    assert class_splits(counts) == ['many', 'many', 'medium', 'medium', 'few', 'few']
    assert class_splits(counts, many_thr=19, few_thr=1) == ['many'] * 4 + ['medium', 'few']
    with pytest.raises(ValueError, match='few_thr'):
        class_splits(counts, many_thr=10, few_thr=50)


def test_meter_matches_per_sample_reference_and_timm_accuracy():
    g = torch.Generator().manual_seed(0)
    num_classes, meter = 7, LongTailMeter(7)
    outputs, targets = [], []
    for b in (5, 16, 1):
        out, tgt = torch.randn(b, num_classes, generator=g), torch.randint(0, num_classes, (b,), generator=g)
        meter.update(out, tgt)
        outputs.append(out)
        targets.append(tgt)
    out, tgt = torch.cat(outputs), torch.cat(targets)
    acc1, acc5 = accuracy(out, tgt, topk=(1, 5))
    got = meter.topk_accuracy()
    assert got[1] == pytest.approx(acc1.item()) and got[5] == pytest.approx(acc5.item())
    pred = out.argmax(1)
    for c in range(num_classes):
        assert meter.class_total[c] == int((tgt == c).sum())
        assert meter.class_correct[c] == int(((tgt == c) & (pred == c)).sum())
        assert meter.class_predicted[c] == int((pred == c).sum())


def test_split_accuracies_weight_back_to_overall():
    g = torch.Generator().manual_seed(1)
    counts = [500, 300, 120, 100, 60, 20, 19, 5, 1, 0]
    meter = LongTailMeter(10)
    tgt = torch.randint(0, 10, (400,), generator=g)
    out = torch.randn(400, 10, generator=g) + 2.0 * torch.nn.functional.one_hot(tgt, 10) * (tgt < 6)[:, None]
    meter.update(out, tgt)
    lt = long_tail_accuracy(meter.class_correct, meter.class_total, counts)
    assert (lt['many_classes'], lt['medium_classes'], lt['few_classes']) == (3, 3, 4)
    assert lt['many_count'] + lt['medium_count'] + lt['few_count'] == 400
    weighted = sum(lt[f'{s}_acc'] * lt[f'{s}_count'] for s in ('many', 'medium', 'few')) / 400
    assert weighted == pytest.approx(meter.topk_accuracy()[1])
    few = [c for c in range(10) if counts[c] < 20]
    mask = torch.isin(tgt, torch.tensor(few))
    assert lt['few_acc'] == pytest.approx(100. * (out.argmax(1)[mask] == tgt[mask]).float().mean().item())


def test_empty_split_is_none_and_rows():
    lt = long_tail_accuracy([3, 1], [4, 2], [200, 150])
    assert lt['many_acc'] == pytest.approx(100 * 4 / 6) and lt['few_acc'] is None and lt['few_count'] == 0
    rows = per_class_rows([3, 0], [4, 0], [200, 5])
    assert rows[0] == dict(class_index=0, train_count=200, val_count=4, correct=3, accuracy=75.0, split='many')
    assert rows[1]['accuracy'] is None and rows[1]['split'] == 'few'


def test_precision_recall_f1_hand_example():
    # targets [0, 0, 1, 1, 2], predictions [0, 1, 1, 1, 0]
    # per class: precision 1/2, 2/3, 0; recall 1/2, 2/2, 0; F1 1/2, 4/5, 0; support 2, 2, 1
    def scores(average, num_classes=3):
        meter = LongTailMeter(num_classes, topk=(1,), average=average)
        meter.update(torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 1, 0]), num_classes).float(),
                     torch.tensor([0, 0, 1, 1, 2]))
        assert meter.class_predicted.tolist() == [2, 3, 0] + [0] * (num_classes - 3)
        return meter.precision_recall_f1()

    macro = scores('macro')
    assert macro['macro_precision'] == pytest.approx(100 * (0.5 + 2 / 3) / 3, abs=1e-4)
    assert macro['macro_recall'] == pytest.approx(50.0)
    assert macro['macro_f1_score'] == pytest.approx(100 * 1.3 / 3, abs=1e-4)
    assert scores('macro', num_classes=5) == macro  # classes neither target nor predicted do not count
    weighted = scores('weighted')
    assert weighted['weighted_precision'] == pytest.approx(100 * (0.4 * 0.5 + 0.4 * 2 / 3), abs=1e-4)
    assert weighted['weighted_recall'] == pytest.approx(60.0) and weighted['weighted_f1_score'] == pytest.approx(52.0)
    micro = scores('micro')
    assert micro == {'micro_precision': 60.0, 'micro_recall': 60.0, 'micro_f1_score': 60.0}


def test_bad_input():
    meter = LongTailMeter(3)
    with pytest.raises(ValueError, match=r'output must be \[B, 3\]'):
        meter.update(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match='target values'):
        meter.update(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match='dataset is empty'):
        meter.topk_accuracy()
    with pytest.raises(ValueError, match='class_counts has 2 classes'):
        long_tail_accuracy([1, 1, 1], [1, 1, 1], [5, 5])
    with pytest.raises(ValueError, match="average must be one of micro, macro, weighted, got 'samples'"):
        LongTailMeter(3, average='samples')
