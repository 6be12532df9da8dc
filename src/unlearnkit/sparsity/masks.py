"""Re-export: pruning masks live in :mod:`unlearnkit.models.masks` (training/ holds them, so they sit
below it; sparsity/ builds on training/ for one-shot magnitude pruning)."""
from ..models.masks import (SUFFIX, apply_masks, attach_masks, global_magnitude_masks, mask_gradients, masks_of,
                            prunable, sparsity_of)

__all__ = ["SUFFIX", "apply_masks", "attach_masks", "global_magnitude_masks", "mask_gradients", "masks_of",
           "prunable", "sparsity_of"]
