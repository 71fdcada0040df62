"""Result files: a summary in timm's validate.py format (CSV with a header row, or JSON) and a per-class CSV."""
import csv
import json
from typing import Dict, List, Sequence, Union

PER_CLASS_FIELDS = ('class_index', 'train_count', 'val_count', 'correct', 'accuracy', 'split')


def write_results(path: str, results: Union[Dict, Sequence[Dict]], format: str = 'csv'):
    """Write one result dict (or a list of them) as JSON or as CSV (one row each, header from the union of keys)."""
    if format not in ('csv', 'json'):
        raise ValueError(f"--results-format must be 'csv' or 'json', got {format!r}")
    with open(path, 'w', newline='') as f:
        if format == 'json':
            json.dump(results, f, indent=4)
            return
        rows = [results] if isinstance(results, dict) else list(results)
        fields: List[str] = []
        for r in rows:
            fields.extend(k for k in r if k not in fields)
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ('' if v is None else v) for k, v in r.items()})


def write_per_class_csv(path: str, rows: Sequence[Dict]):
    """Rows from ``timm_paco.data.metrics.per_class_rows``; empty cells for unknown values."""
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=PER_CLASS_FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ('' if r.get(k) is None else r[k]) for k in PER_CLASS_FIELDS})


def write_confusion_csv(path: str, counts) -> None:
    """The confusion matrix ``counts [C, C]`` as CSV: a header ``true \\ predicted, 0 … C−1``, then one row per true
    class (its index, then its counts per predicted class)."""
    counts = [[int(v) for v in row] for row in counts.tolist()]
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['true \\ predicted'] + list(range(len(counts))))
        for c, row in enumerate(counts):
            writer.writerow([c] + row)
