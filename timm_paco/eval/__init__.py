"""timm_paco.eval: checkpoint loading for evaluation, logit ensembles, post-hoc logit adjustment, result files
and plots."""
from .checkpoint import adapt_state_dict, create_eval_model, split_checkpoints
from .ensemble import EnsembleModel
from .logit_adjust import class_hits, load_logits, logit_offset, save_logits, select_tau, sweep_logit_adjust
from .results import write_per_class_csv, write_results
