"""timm_paco.eval: checkpoint loading for evaluation, logit ensembles, result files and plots."""
from .checkpoint import adapt_state_dict, create_eval_model, split_checkpoints
from .ensemble import EnsembleModel
from .results import write_per_class_csv, write_results
