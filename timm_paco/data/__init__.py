"""timm_paco.data: multi-view transforms and loader, long-tailed datasets, class counts."""
from .class_counts import (
    CLASS_COUNTS_FILE, NoLabelsError, check_dataset_classes, count_classes, dataset_targets, load_class_counts,
    save_class_counts,
)
from .dataset_factory import LT_PREFIX, create_paco_dataset
from .fashion_mnist import prepare_fashion_mnist
from .image_mode import ImageModeDataset, match_model_channels
from .imbalance import ImbalancedDataset, check_imb_factor, long_tail_counts
from .loader import ViewCollate, create_view_loader
from .lt_list import ReaderSplitList, SplitListDataset, read_split_list, resolve_split_list
from .views import MultiViewTransform, create_view_transform, parse_view_recipe, stack_views
from .patch_batch import PatchBatch, PatchCollate, PatchPrefetchLoader, PatchTarget
from .patches import PatchBoxSampler, PatchViewTransform, PatchViews, check_patch_args, create_patch_view_transform
from .samplers import SAMPLERS, ClassAwareSampler, class_probabilities
