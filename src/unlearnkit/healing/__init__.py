"""Healing after unlearning: spare reserves, twin indexes, similarity measures and heal()."""
from .heal import HEAL_DATA, Heal, Healer
from .neighbours import nearest
from .reserve import Replacements, SpareReserve, TwinIndex
from .similarity import SIMILARITIES, Embedder, fit_similarity

__all__ = ["HEAL_DATA", "SIMILARITIES", "Embedder", "Heal", "Healer", "Replacements", "SpareReserve", "TwinIndex",
           "fit_similarity", "nearest"]
