"""Keras HDF5 import against an independent NumPy implementation of the reference Keras model."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from keras_numpy_reference import (
    KerasDUNetReference,
    batchnorm,
    conv3d_same,
    conv3d_transpose_same_s2,
)

from infant_tissue.bundle import load_bundle
from infant_tissue.nn.keras import (
    KerasImportError,
    import_keras_bundle,
    import_keras_model,
    read_keras_weights,
)

SHAPE = (16, 16, 16)


def keras_fixture(tmp_path, deploy: bool, seed=0, name=None, dtype=np.float64, **save_kw):
    """Run the NumPy reference once (creating its weights) and save them like Keras does."""
    ref = KerasDUNetReference(deploy=deploy, seed=seed, dtype=dtype)
    x = np.random.default_rng(seed + 100).normal(size=(*SHAPE, 2))
    logits = ref.forward(x)
    path = tmp_path / (name or f"{'deploy' if deploy else 'train'}-{seed}.h5")
    ref.save_weights(path, **save_kw)
    return path, ref, x, logits


def torch_logits(model, x_channels_last):
    inp = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x_channels_last, -1, 0)))[None]
    with torch.no_grad():
        out = model(inp.to(next(model.parameters()).dtype))
    return np.moveaxis(out[0].double().numpy(), 0, -1)


@pytest.mark.parametrize("deploy", [True, False], ids=["deploy-form", "train-form"])
def test_import_matches_numpy_keras_reference_float64(tmp_path, deploy):
    path, _, x, logits = keras_fixture(tmp_path, deploy)
    model, kwargs, form = import_keras_model(path, dtype=torch.float64)
    assert form == ("deploy" if deploy else "train")
    assert kwargs["init_features"] == 8 and kwargs["growth_rate"] == 4
    assert kwargs["layers_per_block"] == 3 and kwargs["bn_size"] == 4
    err = np.abs(torch_logits(model, x) - logits).max()
    assert err <= 1e-9, err


def test_import_float32_file_like_real_keras(tmp_path):
    path, _, x, logits = keras_fixture(tmp_path, True, dtype=np.float32)
    model, _, _ = import_keras_model(path)
    assert next(model.parameters()).dtype == torch.float32
    rel = np.abs(torch_logits(model, x) - logits).max() / np.abs(logits).max()
    assert rel < 1e-5, rel


@pytest.mark.parametrize(
    "save_kw",
    [{"scope_suffix": "_1"}, {"attrs_as_bytes": False}],
    ids=["scope-suffix", "str-attrs"],
)
def test_writer_variants(tmp_path, save_kw):
    path, _, x, logits = keras_fixture(tmp_path, True, **save_kw)
    model, _, _ = import_keras_model(path, dtype=torch.float64)
    assert np.abs(torch_logits(model, x) - logits).max() <= 1e-9


def test_full_model_file_with_model_weights_group(tmp_path):
    path, _, x, logits = keras_fixture(tmp_path, True)
    wrapped = tmp_path / "full-model.h5"
    with h5py.File(path, "r") as src, h5py.File(wrapped, "w") as dst:
        src.copy(src["/"], dst, name="model_weights")
        for key, value in src.attrs.items():
            dst["model_weights"].attrs[key] = value
        dst.attrs["model_config"] = b"{}"
    model, _, _ = import_keras_model(wrapped, dtype=torch.float64)
    assert np.abs(torch_logits(model, x) - logits).max() <= 1e-9


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layers")
    path, ref, _, _ = keras_fixture(tmp, True)
    model, _, _ = import_keras_model(path, dtype=torch.float64)
    return model, ref.weights


class TestSingleLayers:
    """One Keras layer of each kind against its PyTorch counterpart after import."""

    @staticmethod
    def run(module, x):
        inp = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0)))[None]
        with torch.no_grad():
            return np.moveaxis(module(inp)[0].numpy(), 0, -1)

    def test_conv3d_same(self, imported):
        model, w = imported
        x = np.random.default_rng(1).normal(size=(6, 7, 5, 2))
        k = w["feature_conv"]
        expected = conv3d_same(x, k["kernel"], k["bias"])
        assert np.abs(self.run(model.feature_conv, x) - expected).max() < 1e-12

    def test_batchnorm(self, imported):
        model, w = imported
        x = np.random.default_rng(2).normal(size=(3, 4, 5, 8))
        b = w["feature_bn"]
        expected = batchnorm(x, b["gamma"], b["beta"], b["moving_mean"], b["moving_variance"])
        assert np.abs(self.run(model.feature_bn, x) - expected).max() < 1e-12

    def test_conv3d_transpose_same_stride2(self, imported):
        model, w = imported
        k = w["trans4.deconv.convtrans"]
        x = np.random.default_rng(3).normal(size=(3, 4, 2, k["kernel"].shape[-1]))
        expected = conv3d_transpose_same_s2(x, k["kernel"], k["bias"])
        assert expected.shape == (6, 8, 4, k["kernel"].shape[-2])
        got = self.run(model.trans4.deconv.convtrans, x)
        assert np.abs(got - expected).max() < 1e-12

    def test_fused_stride2_kernel5_group(self, imported):
        model, w = imported
        k = w["trans1.conv1.pyacb.pyacb_5.fused_conv"]
        x = np.random.default_rng(4).normal(size=(8, 6, 7, k["kernel"].shape[-2]))
        # ZeroPadding3D(2) then a 'valid' stride-2 convolution, as the reference ACBlock does.
        from keras_numpy_reference import conv3d_valid

        expected = conv3d_valid(np.pad(x, [(2, 2)] * 3 + [(0, 0)]), k["kernel"], 2) + k["bias"]
        got = self.run(model.trans1.conv1.conv.groups[1], x)
        assert np.abs(got - expected).max() < 1e-12


def test_fusion_epsilon_option(tmp_path):
    path, _, x, logits = keras_fixture(tmp_path, False)
    exact, _, _ = import_keras_model(path, dtype=torch.float64)
    legacy, _, _ = import_keras_model(path, dtype=torch.float64, fusion_epsilon=1e-5)
    assert np.abs(torch_logits(exact, x) - logits).max() <= 1e-9
    assert np.abs(torch_logits(legacy, x) - logits).max() > 1e-6


def test_bundle_from_several_files(tmp_path):
    paths = [keras_fixture(tmp_path, True, seed=s)[0] for s in (0, 1)]
    bundle = import_keras_bundle(paths, tmp_path / "bundle", name="masnet-test")
    assert len(bundle) == 2 and bundle.metadata["architecture"]["fused"] is True
    sources = bundle.metadata["provenance"]["source_files"]
    assert [s["path"] for s in sources] == ["deploy-0.h5", "deploy-1.h5"]
    assert all(len(s["sha256"]) == 64 for s in sources)
    # every reference-implementation file was trained on iSeg images (no cerebellum/brain stem)
    assert bundle.metadata["input_domain"] == "cerebrum" and bundle.input_domain == "cerebrum"
    reloaded = load_bundle(tmp_path / "bundle")
    model, _, _ = import_keras_model(paths[1])
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(reloaded.build_member(1)(x), model(x))


# -- bad files ----------------------------------------------------------------------------------


def test_not_hdf5(tmp_path):
    bad = tmp_path / "weights.h5"
    bad.write_text("this is not HDF5\n")
    with pytest.raises(KerasImportError, match=r"weights\.h5: cannot read as HDF5"):
        read_keras_weights(bad)


def test_truncated_file(tmp_path):
    path, *_ = keras_fixture(tmp_path, True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(KerasImportError, match="deploy-0.h5"):
        import_keras_model(path)


def test_hdf5_without_keras_layout(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(KerasImportError, match="no 'layer_names'"):
        read_keras_weights(path)


def _edit_h5(path, edit):
    with h5py.File(path, "r+") as h5:
        edit(h5)


def test_missing_layer_is_named(tmp_path):
    path, *_ = keras_fixture(tmp_path, True)

    def drop(h5):
        names = [n for n in h5.attrs["layer_names"] if n != b"seg_conv"]
        h5.attrs["layer_names"] = np.array(names)

    _edit_h5(path, drop)
    with pytest.raises(KerasImportError, match="missing tensor 'seg_conv/kernel'"):
        import_keras_model(path)


def test_unused_tensor_is_named(tmp_path):
    path, *_ = keras_fixture(tmp_path, True)

    def add(h5):
        group = h5["seg_conv"]
        group.create_dataset("seg_conv/bias:0", data=np.zeros(4))
        group.attrs["weight_names"] = np.array([b"seg_conv/kernel:0", b"seg_conv/bias:0"])

    _edit_h5(path, add)
    with pytest.raises(KerasImportError, match="'seg_conv/bias' is not used"):
        import_keras_model(path)


def test_misshaped_tensor_is_named(tmp_path):
    path, *_ = keras_fixture(tmp_path, True)

    def reshape(h5):
        name = "dense3.denselayer1.bottle.conv0/bias:0"
        group = h5["dense3.denselayer1.bottle.conv0"]
        del group[name]
        group.create_dataset(name, data=np.zeros(5))

    _edit_h5(path, reshape)
    with pytest.raises(
        KerasImportError, match=r"'dense3\.denselayer1\.bottle\.conv0/bias' has shape"
    ):
        import_keras_model(path)


def test_form_mismatch(tmp_path):
    path, *_ = keras_fixture(tmp_path, True)
    with pytest.raises(KerasImportError, match="--form train was given"):
        import_keras_model(path, form="train")


def test_mixed_architectures_in_one_bundle(tmp_path):
    a = keras_fixture(tmp_path, True)[0]
    ref = KerasDUNetReference(deploy=True, init_features=12)
    ref.forward(np.zeros((*SHAPE, 2)))
    b = tmp_path / "wide.h5"
    ref.save_weights(b)
    with pytest.raises(KerasImportError, match="differs from the first file"):
        import_keras_bundle([a, b], tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
