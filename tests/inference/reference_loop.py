"""A straightforward re-implementation of the reference prediction loop, for comparison.

Written from 3D-MASNet's ``util/prep.py`` (``image_norm``, ``vote``) and
``util/predict_funcs.py`` (``predict_segmentation``): NumPy, channels last, float64
accumulators, one window at a time, every rule spelled out again on purpose — nothing here
imports from ``infant_tissue.inference``.
"""

from __future__ import annotations

import numpy as np
import torch


def image_norm(img):
    mask = img > 0
    mean = np.mean(img[mask])
    std = np.std(img[mask])
    return ((img - mean) / std) * mask


def calc_idx_1d(vol_length, cube_length, stride):
    pos = np.arange(0, vol_length - cube_length + 1, stride)
    if (vol_length - cube_length) % stride != 0:
        pos = np.concatenate([pos, [vol_length - cube_length]])
    return pos


def predict_member(model, t1w, t2w, cube=32, stride=8, skip_rule="normalised"):
    """Probabilities (X, Y, Z, 4) of one member; volumes smaller than ``cube`` are padded."""
    t1w = np.asarray(t1w, dtype=np.float64)
    t2w = np.asarray(t2w, dtype=np.float64)
    shape = t1w.shape
    pads = [(0, max(0, cube - s)) for s in shape]
    t1n = np.pad(image_norm(t1w), pads)[..., None]
    t2n = np.pad(image_norm(t2w), pads)[..., None]
    raw = np.pad(t1w, pads)
    vol = t1n.shape[:3]
    if skip_rule == "normalised":
        mask = np.array(t1n[..., 0] > 0, np.int8)
    elif skip_rule == "brain":
        mask = np.array(raw > 0, np.int8)
    else:
        mask = np.ones(vol, np.int8)
    predict = np.zeros((*vol, 4))
    count = np.zeros((*vol, 1))
    for x in calc_idx_1d(vol[0], cube, stride):
        for y in calc_idx_1d(vol[1], cube, stride):
            for z in calc_idx_1d(vol[2], cube, stride):
                if np.sum(mask[x : x + cube, y : y + cube, z : z + cube]) == 0:
                    continue
                cube_in = np.concatenate(
                    [
                        t1n[x : x + cube, y : y + cube, z : z + cube, :],
                        t2n[x : x + cube, y : y + cube, z : z + cube, :],
                    ],
                    axis=-1,
                )[None]
                tensor = torch.from_numpy(cube_in).float().permute(0, 4, 1, 2, 3)
                with torch.no_grad():
                    out = torch.softmax(model(tensor), dim=1)
                predict[x : x + cube, y : y + cube, z : z + cube, :] += (
                    out[0].permute(1, 2, 3, 0).double().numpy()
                )
                count[x : x + cube, y : y + cube, z : z + cube, :] += 1.0
    count += count == 0
    predict = predict / count
    return predict[: shape[0], : shape[1], : shape[2]]


def vote(label_maps):
    onehot = [
        np.stack([seg == c for c in range(4)], axis=-1).astype(np.int16) for seg in label_maps
    ]
    return np.argmax(sum(onehot), axis=-1).astype(np.uint8)
