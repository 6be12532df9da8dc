"""Small generic helpers every layer may use; they import nothing of unlearnkit but ``errors``.

``validation`` (hyperparameter checks), ``seeding`` (named seeds, the global RNG forked from a
generator), ``sampling`` (random positions, proportional quotas, stratified subsets), ``files``
(atomic writes) and ``modules`` (copies of a model).
"""
