"""timm_paco.eval: checkpoint loading for evaluation, logit ensembles, post-hoc logit adjustment and τ-norm, confusion
counts, result files and plots."""
from .checkpoint import create_eval_model, split_checkpoints
from .confusion import confusion_counts, confusion_rates, top_confusions
from .ensemble import EnsembleModel
from .logit_adjust import (
    class_hits, fit_class_bias, load_logits, logit_offset, save_logits, select_tau, sweep_logit_adjust,
)
from .results import write_confusion_csv, write_per_class_csv, write_results
from .calibration import ECE_BINS, CalibrationMeter
from .tau_norm import (
    ClassifierInputs, load_features, save_features, sweep_tau_norm, tau_norm_logits, tau_normalize_classifier,
)
from .ncm import NearestClassMean, attach_ncm, class_means
