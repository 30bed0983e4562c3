"""The metrics of ``gnm eval`` by name: what each needs from the model and the dataset, and
which evaluation stages compute it (:mod:`gnm.eval.run` runs the stages, :mod:`gnm.eval.cost`
estimates them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric: the model capability it needs (gnm/models/base.py), whether the dataset
    must have an S-Acc judge (gnm/eval/judges.py) or be one of ``datasets``, and the stages
    it needs, in run order (shared stages, e.g. the prior samples, run once for every metric
    that needs them)."""

    needs: str
    stages: tuple[str, ...]
    judge: bool = False
    datasets: tuple[str, ...] | None = None  # only these datasets (None: any)


#: Every metric, in the order of eval.json.
METRICS: dict[str, Metric] = {
    "sacc": Metric("sample", ("samples", "sacc"), judge=True),
    "dsteps": Metric("sample", ("samples", "scenes", "dsteps")),
    "ll": Metric("log_importance_weight", ("scenes", "ll")),
    "ap50": Metric("decompose", ("scenes", "decompose", "ap")),
    "ap": Metric("decompose", ("scenes", "decompose", "ap")),
    "probe": Metric("decompose", ("scenes", "decompose", "ap", "probe")),
    "fd": Metric("sample", ("samples", "scenes", "fd"),
                 datasets=("mnist4", "mnist10", "mnist4_10")),  # digit-feature space
}
#: The order stages run in (each at most once).
STAGE_ORDER = ("samples", "sacc", "scenes", "decompose", "ap", "probe", "fd", "ll", "dsteps")
#: The metrics ``gnm eval`` runs by default: each takes seconds to a minute at n = 1000.
QUICK = ("sacc", "ap50", "ap", "probe")


def stages_for(metrics: list[str]) -> list[str]:
    """The stages that computing ``metrics`` runs, in :data:`STAGE_ORDER`."""
    wanted = {s for m in metrics for s in METRICS[m].stages}
    return [s for s in STAGE_ORDER if s in wanted]
