"""Weight bundles: round trip, checksums, strict loading, safe names, atomic writes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from infant_tissue.bundle import (
    BundleError,
    default_metadata,
    load_bundle,
    read_bundle_metadata,
    save_bundle,
)
from infant_tissue.nn import build_model, fuse_model

SMALL = {"init_features": 8, "growth_rate": 4}


def small_metadata(**extra):
    return default_metadata(
        name="tiny",
        architecture={"name": "dunet-mixacb", "kwargs": SMALL, "fused": True},
        **extra,
    )


def small_members(n=2):
    return [fuse_model(build_model("dunet-mixacb", **SMALL)) for _ in range(n)]


def test_round_trip_reproduces_every_member(tmp_path):
    members = small_members(3)
    bundle = save_bundle(tmp_path / "b", members, small_metadata())
    assert len(bundle) == 3 and bundle.name == "tiny"
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    for key in (
        "architecture",
        "classes",
        "input_modalities",
        "normalisation",
        "patch_size",
        "stride",
        "provenance",
        "licence",
        "members",
    ):
        assert key in meta
    assert [c["abbreviation"] for c in meta["classes"]] == ["BG", "CSF", "GM", "WM"]
    assert [c["iseg_value"] for c in meta["classes"]] == [0, 10, 150, 250]
    assert meta["input_modalities"] == ["T1w", "T2w"]
    assert len(bundle.sha256) == 64
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o755  # readable by a container user
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in (tmp_path / "b").iterdir())
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        for i, model in enumerate(members):
            assert torch.equal(load_bundle(tmp_path / "b").build_member(i)(x), model(x))
    net = bundle.build_network()
    bundle.load_member_into(net, 2)
    with torch.no_grad():
        assert torch.equal(net(x), members[2](x))


def test_tampered_member_is_rejected(tmp_path):
    save_bundle(tmp_path / "b", small_members(1), small_metadata())
    member = tmp_path / "b" / "member-00.safetensors"
    data = bytearray(member.read_bytes())
    data[-1] ^= 0xFF
    member.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(tmp_path / "b")


def _rewrite_member(bundle_dir, edit):
    """Edit a member's tensors and re-sign model.json, to reach the strict-loading checks."""
    from infant_tissue.bundle import sha256_file

    path = bundle_dir / "member-00.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))
    meta = json.loads((bundle_dir / "model.json").read_text())
    meta["members"][0]["sha256"] = sha256_file(path)
    (bundle_dir / "model.json").write_text(json.dumps(meta))
    return load_bundle(bundle_dir)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.pop("seg_conv.weight"), "missing tensor 'seg_conv.weight'"),
        (
            lambda t: t.__setitem__("extra.weight", torch.zeros(1)),
            "unexpected tensor 'extra.weight'",
        ),
        (
            lambda t: t.__setitem__("seg_conv.weight", torch.zeros(4, 60, 1, 1, 2)),
            "tensor 'seg_conv.weight' has shape",
        ),
    ],
)
def test_loading_is_strict_and_names_the_tensor(tmp_path, edit, message):
    save_bundle(tmp_path / "b", small_members(1), small_metadata())
    bundle = _rewrite_member(tmp_path / "b", edit)
    with pytest.raises(BundleError, match=message):
        bundle.build_member(0)


def test_member_paths_cannot_escape_the_bundle(tmp_path):
    save_bundle(tmp_path / "b", small_members(1), small_metadata())
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    for evil in ("../outside.safetensors", "/etc/passwd.safetensors", "sub/../../x.safetensors"):
        meta["members"][0]["file"] = evil
        (tmp_path / "b" / "model.json").write_text(json.dumps(meta))
        with pytest.raises(BundleError, match="unsafe member file name"):
            load_bundle(tmp_path / "b")


def test_bad_metadata_is_reported(tmp_path):
    save_bundle(tmp_path / "b", small_members(1), small_metadata())
    meta_path = tmp_path / "b" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(BundleError, match="newer"):
        load_bundle(tmp_path / "b")
    meta_path.write_text(json.dumps({**meta, "architecture": {"name": "nope", "kwargs": {}}}))
    with pytest.raises(BundleError, match="unknown architecture"):
        load_bundle(tmp_path / "b").build_network()
    meta_path.write_text("{not json")
    with pytest.raises(BundleError, match="invalid JSON"):
        load_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="not a weight bundle"):
        load_bundle(tmp_path / "nothing-here")


def test_input_domain_defaults_to_cerebrum_and_is_validated(tmp_path):
    bundle = save_bundle(tmp_path / "b", small_members(1), small_metadata())
    assert bundle.input_domain == "cerebrum"
    meta_path = tmp_path / "b" / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["input_domain"]  # bundles written before the key: iSeg-trained
    meta_path.write_text(json.dumps(meta))
    assert load_bundle(tmp_path / "b").input_domain == "cerebrum"
    meta_path.write_text(json.dumps({**meta, "input_domain": "whole-brain"}))
    assert read_bundle_metadata(tmp_path / "b").input_domain == "whole-brain"
    meta_path.write_text(json.dumps({**meta, "input_domain": "cerebellum"}))
    with pytest.raises(BundleError, match="input_domain must be one of cerebrum, whole-brain"):
        load_bundle(tmp_path / "b")


def test_failed_save_leaves_nothing_behind(tmp_path):
    wrong = build_model("dunet-mixacb", init_features=8, growth_rate=8, deploy=True)
    with pytest.raises(BundleError, match="member 1"):
        save_bundle(tmp_path / "b", [small_members(1)[0], wrong], small_metadata())
    assert list(tmp_path.iterdir()) == []


def test_existing_bundle_needs_overwrite(tmp_path):
    save_bundle(tmp_path / "b", small_members(1), small_metadata())
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(tmp_path / "b", small_members(1), small_metadata())
    bundle = save_bundle(tmp_path / "b", small_members(2), small_metadata(), overwrite=True)
    assert len(bundle) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_float16_storage_halves_the_size(tmp_path):
    members = small_members(1)
    b32 = save_bundle(tmp_path / "b32", members, small_metadata())
    b16 = save_bundle(tmp_path / "b16", members, small_metadata(), dtype=torch.float16)
    size = lambda b: b.member_path(0).stat().st_size  # noqa: E731
    assert size(b16) < 0.6 * size(b32)
    assert b16.metadata["storage_dtype"] == "float16"
    state = b16.state_dict(0)
    assert state["seg_conv.weight"].dtype == torch.float32
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        a, b = members[0](x), b16.build_member(0)(x)
    assert (a - b).abs().max() / a.abs().max() < 1e-2


def test_training_form_bundle(tmp_path):
    model = build_model("dunet-mixacb", **SMALL).eval()
    meta = default_metadata(architecture={"name": "dunet-mixacb", "kwargs": SMALL, "fused": False})
    bundle = save_bundle(tmp_path / "b", [model], meta)
    x = torch.randn(1, 2, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(bundle.build_member(0)(x), model(x))
