"""Sparsity: pruning masks held through training and unlearning, and magnitude pruning.

The masks live in :mod:`unlearnkit.models.masks` (below training/, which holds them) and are
re-exported here. The sparse original model (one-shot magnitude pruning with weight rewinding) is
built by ``unlearnkit.sparsity.omp``, imported on its own (it trains).
"""
from .masks import (apply_masks, attach_masks, global_magnitude_masks, mask_gradients, masks_of, prunable,
                    sparsity_of)

__all__ = ["apply_masks", "attach_masks", "global_magnitude_masks", "mask_gradients", "masks_of", "prunable",
           "sparsity_of"]
