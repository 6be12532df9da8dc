"""The recipes: thin functions that read setup → unlearn → audit → record, each on the one runner."""
from .damage import run_damage
from .heal import run_heal
from .run import run_experiment
from .tune import run_tune

__all__ = ["run_damage", "run_experiment", "run_heal", "run_tune"]
