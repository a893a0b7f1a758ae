"""An independent NumPy re-implementation of the reference Keras DU-Net-MixACB, channels last.

It follows the public Keras code layer by layer (names, channel split, padding), creates random
weights in Keras layouts while it runs (as Keras builds layers), and writes them with the HDF5
layout of ``model.save_weights``. It shares no code with ``infant_tissue`` so that the importer
is checked against Keras semantics, not against itself.
"""

from __future__ import annotations

import h5py
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

KERAS_EPS = 1e-3


def conv3d_valid(x: np.ndarray, kernel: np.ndarray, stride: int = 1) -> np.ndarray:
    """Keras Conv3D, padding 'valid'. x (D,H,W,C), kernel (kd,kh,kw,C,O)."""
    kd, kh, kw = kernel.shape[:3]
    win = sliding_window_view(x, (kd, kh, kw), axis=(0, 1, 2))[::stride, ::stride, ::stride]
    return np.einsum("dhwcijk,ijkco->dhwo", win, kernel, optimize=True)


def conv3d_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Keras Conv3D, stride 1, padding 'same' with an odd kernel."""
    pads = [(k // 2, k // 2) for k in kernel.shape[:3]] + [(0, 0)]
    y = conv3d_valid(np.pad(x, pads), kernel)
    return y if bias is None else y + bias


def conv3d_transpose_same_s2(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras Conv3DTranspose(kernel 3, strides 2, padding 'same'). kernel (3,3,3,O,C).

    Scatter form: input voxel i contributes to outputs 2i + a, a = 0..2, giving 2n + 1 samples;
    TensorFlow's 'same' keeps the first 2n (its forward convolution pads 0 before, 1 after).
    """
    d, h, w, _ = x.shape
    out = kernel.shape[3]
    full = np.zeros((2 * d + 1, 2 * h + 1, 2 * w + 1, out), dtype=x.dtype)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                full[a : a + 2 * d : 2, b : b + 2 * h : 2, c : c + 2 * w : 2] += np.einsum(
                    "dhwc,oc->dhwo", x, kernel[a, b, c]
                )
    return full[: 2 * d, : 2 * h, : 2 * w] + bias


def batchnorm(x: np.ndarray, gamma, beta, mean, var, eps: float = KERAS_EPS) -> np.ndarray:
    """Keras BatchNormalization at inference."""
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


class KerasDUNetReference:
    """Reference DU-Net-MixACB in NumPy; ``deploy`` selects the fused or training form."""

    def __init__(
        self,
        deploy: bool,
        seed: int = 0,
        init_features: int = 8,
        growth_rate: int = 4,
        bn_size: int = 4,
        dense_conv: int = 3,
        num_classes: int = 4,
        dtype=np.float64,
    ) -> None:
        self.deploy = deploy
        self.rng = np.random.default_rng(seed)
        self.init_features = init_features
        self.growth_rate = growth_rate
        self.bn_size = bn_size
        self.dense_conv = dense_conv
        self.num_classes = num_classes
        self.dtype = dtype
        self.layers: list[str] = ["input"]
        self.weights: dict[str, dict[str, np.ndarray]] = {}

    # -- weights -------------------------------------------------------------------------------
    def _mark(self, name: str) -> None:
        if name not in self.layers:
            self.layers.append(name)

    def _param(self, layer: str, var: str, shape: tuple[int, ...], kind: str) -> np.ndarray:
        self._mark(layer)
        store = self.weights.setdefault(layer, {})
        if var not in store:
            rng = self.rng
            if kind == "kernel":
                fan_in = int(np.prod(shape[:3])) * shape[3]
                value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
            elif kind == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            elif kind == "var":
                value = rng.uniform(0.5, 2.0, shape)
            else:  # bias, beta, mean
                value = rng.normal(0, 0.1, shape)
            store[var] = value.astype(self.dtype)
        return store[var]

    # -- layers --------------------------------------------------------------------------------
    def conv(self, x, name, filters, ksize, stride=1, pad=None, use_bias=True, same=False):
        kernel = self._param(name, "kernel", (*ksize, x.shape[-1], filters), "kernel")
        bias = self._param(name, "bias", (filters,), "bias") if use_bias else None
        if same:
            return conv3d_same(x, kernel, bias)
        x = np.pad(x, [(p, p) for p in pad] + [(0, 0)])
        y = conv3d_valid(x, kernel, stride)
        return y if bias is None else y + bias

    def bn(self, x, name):
        c = (x.shape[-1],)
        return batchnorm(
            x,
            self._param(name, "gamma", c, "gamma"),
            self._param(name, "beta", c, "beta"),
            self._param(name, "moving_mean", c, "mean"),
            self._param(name, "moving_variance", c, "var"),
        )

    def acblock(self, x, name, filters, ksize, stride):
        p = ksize // 2
        if self.deploy:
            self._mark(name + ".fused_pad")
            return self.conv(x, name + ".fused_conv", filters, (ksize,) * 3, stride, (p, p, p))
        total = 0
        for branch, shape, pad in (
            ("nxnxn", (ksize, ksize, ksize), (p, p, p)),
            ("1xnxn", (1, ksize, ksize), (0, p, p)),
            ("nx1xn", (ksize, 1, ksize), (p, 0, p)),
            ("nxnx1", (ksize, ksize, 1), (p, p, 0)),
        ):
            y = self.conv(x, f"{name}.conv_{branch}", filters, shape, stride, pad, use_bias=False)
            total = total + self.bn(y, f"{name}.bn_{branch}")
        self._mark(name + ".add")
        return total

    def pyramid_acblock(self, x, name, out_channels, stride):
        cin = x.shape[-1]
        c3 = cin // 4 * 3
        o3 = out_channels // 4 * 3
        self._mark(f"lambda_{len(self.layers)}")
        a = self.acblock(x[..., :c3], name + ".pyacb_3", o3, 3, stride)
        b = self.acblock(x[..., c3:], name + ".pyacb_5", out_channels - o3, 5, stride)
        self._mark(name + ".concat_3_5")
        return np.concatenate([a, b], axis=-1)

    def aconv(self, x, name, out_channels, stride):
        y = self.pyramid_acblock(x, name + ".pyacb", out_channels, stride)
        self._mark(name + ".relu")
        return relu(y)

    def dense_block(self, x, name):
        for i in range(self.dense_conv):
            n = f"{name}.denselayer{i}"
            y = self.conv(
                x, n + ".bottle.conv0", self.bn_size * self.growth_rate, (1, 1, 1), same=True
            )
            y = relu(self.bn(y, n + ".bottle.bn0"))
            y = self.aconv(y, n + ".aconv", self.growth_rate, 1)  # dropout: identity at inference
            x = np.concatenate([x, y], axis=-1)
        return x

    def transition_down(self, x, name):
        x = self.aconv(x, name + ".conv0", int(x.shape[-1] * 0.5), 1)
        return self.aconv(x, name + ".conv1", x.shape[-1], 2)

    def transition_up(self, x, name):
        out = int(x.shape[-1] * 0.5)
        kernel = self._param(
            name + ".deconv.convtrans", "kernel", (3, 3, 3, out, x.shape[-1]), "kernel"
        )
        bias = self._param(name + ".deconv.convtrans", "bias", (out,), "bias")
        y = conv3d_transpose_same_s2(x, kernel, bias)
        return relu(self.bn(y, name + ".deconv.bn"))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (D, H, W, 2) -> softmax probabilities (D, H, W, classes); also returns logits."""
        x = x.astype(self.dtype)
        y = self.conv(x, "feature_conv", self.init_features, (3, 3, 3), same=True)
        y = relu(self.bn(y, "feature_bn"))
        self._mark("feature_relu")
        d1 = self.dense_block(y, "dense1")
        d2 = self.dense_block(self.transition_down(d1, "trans1"), "dense2")
        d3 = self.dense_block(self.transition_down(d2, "trans2"), "dense3")
        d4 = self.dense_block(self.transition_down(d3, "trans3"), "dense4")
        d5 = self.dense_block(np.concatenate([d3, self.transition_up(d4, "trans4")], -1), "dense5")
        d6 = self.dense_block(np.concatenate([d2, self.transition_up(d5, "trans5")], -1), "dense6")
        d7 = self.dense_block(np.concatenate([d1, self.transition_up(d6, "trans6")], -1), "dense7")
        logits = self.conv(d7, "seg_conv", self.num_classes, (1, 1, 1), use_bias=False, same=True)
        self._mark("output")
        return logits

    # -- HDF5 ----------------------------------------------------------------------------------
    def save_weights(self, path, scope_suffix: str = "", attrs_as_bytes: bool = True) -> None:
        """Write the Keras-2 ``save_weights`` layout (call after one ``forward``)."""

        def encode(names):
            if attrs_as_bytes:
                return np.array([n.encode("utf8") for n in names])
            return np.array(names, dtype=h5py.string_dtype())

        with h5py.File(path, "w") as h5:
            h5.attrs["layer_names"] = encode(self.layers)
            h5.attrs["backend"] = b"tensorflow"
            h5.attrs["keras_version"] = b"2.2.4"
            for layer in self.layers:
                group = h5.create_group(layer)
                variables = self.weights.get(layer, {})
                names = [f"{layer}{scope_suffix}/{var}:0" for var in variables]
                group.attrs["weight_names"] = encode(names)
                for name, value in zip(names, variables.values(), strict=True):
                    group.create_dataset(name, data=value)
