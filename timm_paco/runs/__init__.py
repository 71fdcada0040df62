"""timm_paco.runs: the Fashion-MNIST-LT recipes and the train / validate runs of the quick start and the benchmarks
(each run a ``python -m timm_paco.train`` / ``timm_paco.validate`` subprocess, as a user runs them)."""
from .commands import TRAIN, VALIDATE, second_stage_command, second_stage_epochs, train_command, validate_command
from .discussion import write_with_discussion
from .jobs import find_checkpoint, run_job, run_stage, run_tau_norm_job
from .recipes import (
    DEFAULT_N_MAX, FEW_SHOT_THR, IMB_FACTOR, LARGE_N_MAX, LARGE_RECIPE, MANY_SHOT_THR, NUM_CLASSES, RECIPE,
    RETRAIN_FLAGS, TAU_NORM_GRID, TINY_N_MAX, TINY_N_TEST, TINY_RECIPE, first_task, method_flags, posthoc_runs,
    run_label, run_model, run_names, second_stages,
)
