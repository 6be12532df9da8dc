"""Sparsity: pruning masks held through training and unlearning, and magnitude pruning."""
from .masks import (apply_masks, attach_masks, global_magnitude_masks, mask_gradients, masks_of, prunable,
                    sparsity_of)

__all__ = ["apply_masks", "attach_masks", "global_magnitude_masks", "mask_gradients", "masks_of", "prunable",
           "sparsity_of"]
