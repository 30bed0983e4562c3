"""Temperature sweep of prior samples: per-temperature S-Acc, the class histogram of the
top-left digit, its relative entropy by hand, and the benchmark script's errors."""

from __future__ import annotations

import math

import pytest
import torch

from gnm.data.scenes import SceneGenerator
from gnm.errors import GNMError
from gnm.eval import temperature as T
from gnm.eval.corrupt import corrupted_batch
from tests.conftest import load_benchmark
from tests.test_eval_judge import IntensityClassifier

pytestmark = pytest.mark.usefixtures("one_thread")


class Stub:
    """``sample`` returns the next real scenes at temperature <= 0.6 and wrong-order scenes
    above it, starting again at scene 0 when the temperature changes."""

    def __init__(self, good: torch.Tensor, bad: torch.Tensor) -> None:
        self.good, self.bad, self.calls = good, bad, []

    def parameters(self):
        return iter([torch.zeros(1)])

    def sample(self, n, generator=None, temperature=1.0):
        if not self.calls or self.calls[-1][1] != temperature:
            self.pos = 0
        self.calls.append((generator, temperature, n))
        src = self.good if temperature <= 0.6 else self.bad
        out = src[self.pos:self.pos + n]
        self.pos += n
        return out


def _float(images) -> torch.Tensor:
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


def test_sweep_judges_each_temperature_and_counts_first_classes(fake_mnist):
    gen = SceneGenerator("mnist4", "test", 64, seed=0, mnist=fake_mnist)
    images, notes = gen.batch(range(30))
    stub = Stub(_float(images), _float(corrupted_batch(gen, list(range(30)), "wrong_order")))
    r = T.temperature_sweep(stub, "mnist4", [1.0, 0.5], n=30, batch_size=8,
                            classifier=IntensityClassifier())
    one, half = r["rows"]
    assert (one["temperature"], one["sacc"], half["temperature"], half["sacc"]) == (1, 0, 0.5, 1)
    assert one["first_class"] == [0] * 7 and one["first_class_entropy"] == 0.0
    assert "ok" not in half["reasons"] and sum(one["reasons"].values()) == 30
    truth = [0] * 7
    for a in notes:
        truth[min(a["classes"])] += 1
    assert half["first_class"] == truth
    assert half["first_class_entropy"] == pytest.approx(T.relative_entropy(truth))
    # batches of 8 (the last one 6) at each temperature, seeded as gnm eval's samples are
    assert [c[2] for c in stub.calls] == [8, 8, 8, 6] * 2
    assert [c[0].initial_seed() for c in stub.calls] == [0, 1, 2, 3] * 2
    table = T.sweep_table(r)
    assert table.count("\n") == 3 and "| 0.5 | 1.000 |" in table


def test_relative_entropy_by_hand():
    assert T.relative_entropy([2, 2, 2, 2]) == pytest.approx(1.0)
    assert T.relative_entropy([1, 1, 0]) == pytest.approx(math.log(2) / math.log(3))
    assert T.relative_entropy([5, 0, 0]) == 0.0 and T.relative_entropy([0, 0]) == 0.0
    # p = (3/4, 1/4): h = -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.5623 nats, / ln 2
    assert T.relative_entropy([3, 1]) == pytest.approx(0.5623351446 / math.log(2))


def test_first_class_counts_only_ok_mnist4_verdicts():
    v = [{"ok": True, "rule": "mnist4", "labels": [3, 4, 5, 6]},
         {"ok": False, "rule": "mnist4", "labels": [0, 1, 2, 3]},
         {"ok": True, "rule": "mnist4", "labels": [6, 7, 8, 9]}]
    assert T.first_class_counts(v) == [0, 0, 0, 1, 0, 0, 1]


def test_sweep_needs_temperatures_and_script_refuses_bad_ones(capsys):
    with pytest.raises(GNMError, match="at least one temperature"):
        T.temperature_sweep(None, "mnist4", [])
    main = load_benchmark("prior_temperature").main
    assert main(["no/such/run", "--temps", "1,-2"]) == 2
    assert "temperature must be a finite number >= 0" in capsys.readouterr().err
    assert main(["no/such/run", "--temps", "1,x"]) == 2
    assert "comma list of numbers" in capsys.readouterr().err


def test_sweep_refuses_a_dataset_without_a_judge_before_sampling():
    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the model was used ({name}) before the dataset was checked")

    with pytest.raises(GNMError, match="the temperature sweep needs a dataset with an S-Acc"):
        T.temperature_sweep(Untouchable(), "nosuchdata", [1.0], n=20)
