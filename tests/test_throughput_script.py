"""benchmarks/train_throughput.py: the FLOP breakdown against a hand count, and the profile."""

from __future__ import annotations

import pytest

from tests.conftest import load_benchmark


def test_flops_glimpse_decoder_by_hand():
    g = load_benchmark("train_throughput").flops("mnist4", batch=1)
    # The paper MNIST glimpse decoder, per glimpse, forward (2 FLOP per multiply-add):
    # z_what 20 -> 1024 at 1x1; 64 -> 256 at 4x4; 64 -> 128 at 8x8; 32 -> 64 at 16x16 (1x1 convs,
    # each followed by a pixel shuffle); 16 -> 8 and 8 -> 1, 3x3, at 32x32.
    fwd = 2 * (20 * 1024 + 64 * 256 * 16 + 64 * 128 * 64 + 32 * 64 * 256
               + 16 * 8 * 9 * 1024 + 8 * 1 * 9 * 1024)
    assert fwd == 5_169_152
    # Backward: the gradients of the input and of the weights each cost one forward; 16 cells.
    assert g["glimpse_decoder"] == pytest.approx(3 * fwd * 16 / 1e9, rel=1e-9)
    # The 9-conv encoder on one 128-px image: (C_in, C_out, kernel, output side) per conv; the
    # first conv needs no input gradient (the image is data), the others cost 3 forwards.
    convs = [(1, 16, 4, 64), (16, 16, 3, 64), (16, 32, 4, 32), (32, 32, 3, 32), (32, 64, 4, 16),
             (64, 64, 3, 16), (64, 64, 4, 8), (64, 64, 3, 8), (64, 64, 4, 4)]
    enc = [2 * ci * co * k * k * side * side for ci, co, k, side in convs]
    assert g["encoder"] == pytest.approx((2 * enc[0] + 3 * sum(enc[1:])) / 1e9, rel=1e-9)
    assert g["other"] >= 0 and {"structdraw", "structure"} <= set(g)


@pytest.mark.parametrize("bf16", [False, True])
def test_profile_rows(bf16):
    rows = load_benchmark("train_throughput").profile("mnist4-cpu", batch=1, bf16=bf16, top=5)
    assert len(rows) == 5 and all(set(r) == {"op", "self_ms", "share"} for r in rows)
    shares = [r["share"] for r in rows]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1
    ops = {r["op"] for r in rows}
    assert any("conv" in op or "mm" in op for op in ops)  # the step's arithmetic shows up


def test_cpu_features_reads_cpuinfo(monkeypatch, tmp_path):
    script = load_benchmark("train_throughput")
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    real_open = open
    monkeypatch.setattr("builtins.open",
                        lambda path, *a, **k: real_open(fake if path == "/proc/cpuinfo" else path,
                                                        *a, **k))
    assert script.cpu_features() == ["avx2", "avx512f", "avx512_bf16"]


def test_one_table_for_several_presets(capsys):
    script = load_benchmark("train_throughput")
    assert script.presets_from("vae-cpu, space-cpu") == ["vae-cpu", "space-cpu"]
    every_cpu = script.presets_from("cpu")
    assert {"mnist4-cpu", "vae-cpu", "convdraw-cpu", "space-cpu", "genesis-cpu"} <= \
        set(every_cpu) and all(n.endswith("-cpu") for n in every_cpu)
    assert script.main(["--preset", "vae-cpu,space-cpu", "--steps", "1", "--warmup", "0",
                        "--batch", "2", "--threads", "1", "--dtypes", "fp32"]) == 0
    table = capsys.readouterr().out.split("| preset |", 1)[1].splitlines()
    vae, space = ([c.strip() for c in line.strip("|").split("|")] for line in table[2:4])
    assert vae[0] == "vae-cpu" and float(vae[4]) > 0 and float(vae[5]) > 0  # samples
    assert space[0] == "space-cpu" and space[5] == "—" and "(decompose)" in space[6]
    assert "(reconstruct)" in vae[6]
    with pytest.raises(SystemExit):
        script.main(["--preset", "vae-cpu,nope"])
    assert "unknown preset 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--preset", "cpu", "--flops"])
    assert "--profile and --flops take a single --preset" in capsys.readouterr().err
