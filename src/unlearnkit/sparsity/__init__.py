"""Sparsity: pruning masks held through training and unlearning, and magnitude pruning.

The sparse original model (one-shot magnitude pruning with weight rewinding) is built by
``unlearnkit.sparsity.omp``, imported on its own (it trains, and training imports the masks).
"""
from .masks import (apply_masks, attach_masks, global_magnitude_masks, mask_gradients, masks_of, prunable,
                    sparsity_of)

__all__ = ["apply_masks", "attach_masks", "global_magnitude_masks", "mask_gradients", "masks_of", "prunable",
           "sparsity_of"]
