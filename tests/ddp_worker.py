"""A ``gnm`` command line for torchrun tests: fake digits and, optionally, a crash.

``torchrun ... tests/ddp_worker.py train ...`` runs ``gnm.cli.main`` on the fake MNIST of
``tests.conftest`` (no real data needed). With ``GNM_TEST_CRASH=RANK:STEP`` that rank exits
abruptly (``os._exit(1)``, as a killed process would) when it starts training step ``STEP``
(0-based) of the first attempt (``TORCHELASTIC_RESTART_COUNT`` 0), so ``--max-restarts``
relaunches every rank.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_fake_mnist  # noqa: E402


def main() -> int:
    """Patch in the fake digits (and the crash), then run the command line."""
    import gnm.data.mnist
    from gnm import cli
    from gnm.train import trainer

    fake = make_fake_mnist(120, 20)
    gnm.data.mnist.load_mnist = lambda *a, **k: fake
    crash = os.environ.get("GNM_TEST_CRASH")
    if crash and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
        rank, at = map(int, crash.split(":"))
        real = trainer.step_seed

        def step_seed(seed: int, r: int, step: int) -> int:
            if r == rank and step == at:
                os._exit(1)
            return real(seed, r, step)

        trainer.step_seed = step_seed
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
