"""``benchmarks/backbones.py`` end to end at a toy budget (``make benchmark``; not in CI)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "backbones.py"


def _load():
    spec = importlib.util.spec_from_file_location("benchmark_backbones", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.benchmark
def test_backbones_benchmark_runs_every_part(tmp_path):
    bench = _load()
    results = bench.main(
        [
            "--parts", "cost", "volume", "training",
            "--networks", "buinet-mixacb", "mixnet-v2",
            "--repeats", "1", "--volume-slices", "2",
            "--steps", "4", "--subjects", "2", "--shape", "48", "56", "48",
            "--json", str(tmp_path / "backbones.json"),
        ]
    )  # fmt: skip
    cost = {(r["network"], r["form"]): r for r in results["cost"]}
    # paper widths: the spec's pinned counts (seed-systems.md §1)
    assert cost[("buinet-mixacb", "training")]["parameters"] == 1_847_424
    assert cost[("buinet-mixacb", "fused")]["parameters"] == 1_478_848
    assert cost[("mixnet-v2", "-")]["parameters"] == 57_412
    # fusing removes the branches: fewer FLOPs for the same window
    assert cost[("buinet-mixacb", "fused")]["gflop"] < cost[("buinet-mixacb", "training")]["gflop"]
    assert cost[("buinet-mixacb", "fused")]["window"] == "64×64×64"
    assert results["volume"]["seconds"] > 0
    trained = {r["network"]: r for r in results["training"]}
    assert set(trained) == {"buinet-mixacb", "mixnet-v2"}
    for row in trained.values():
        assert all(0.0 <= row[k] <= 1.0 for k in ("dice_csf", "dice_gm", "dice_wm"))
    assert (tmp_path / "backbones.json").is_file()
