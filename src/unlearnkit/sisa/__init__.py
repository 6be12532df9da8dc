"""SISA (Bourtoule et al. 2021): sharded, isolated, sliced, aggregated training and exact unlearning.

>>> from unlearnkit.sisa import SisaConfig, SisaStore, train_sisa          # doctest: +SKIP
>>> store = train_sisa(model, train_samples, SisaConfig(shards=5, slices=4, budget=budget), "my-sisa")
>>> SisaStore.open("my-sisa").unlearn(ids, pool=train_samples.pool, template=model)
"""
from .ensemble import AGGREGATIONS, SisaEnsemble, aggregate
from .plan import ShardPlan, make_plan
from .store import SisaConfig, SisaStore, Unlearning, UnlearningReport, cached_store, train_sisa

__all__ = ["AGGREGATIONS", "ShardPlan", "SisaConfig", "SisaEnsemble", "SisaStore", "Unlearning", "UnlearningReport",
           "aggregate", "cached_store", "make_plan", "train_sisa"]
