"""The sliding-window engine: transfers, batch sizes, weights and devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infant_tissue.inference import SlidingWindowInferer, resolve_device, window_grid

from .conftest import tiny_model


def _image(shape=(2, 40, 40, 36), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen)


def _run(inferer, image, starts, patch=(32, 32, 32), importance=None):
    out = torch.zeros((4, *image.shape[1:]))
    inferer.accumulate(image, starts, patch, out, importance)
    return out


def test_slice_and_index_transfers_agree_and_batch_size_does_not_matter():
    model = tiny_model(7)
    image = _image()
    starts = window_grid(image.shape[1:], 32, 8)[::2]
    cpu = torch.device("cpu")
    reference = _run(
        SlidingWindowInferer(model, cpu, batch_size=1, transfer="slice"), image, starts
    )
    for batch, transfer, layout in ((3, "slice", True), (5, "index", True), (None, "slice", False)):
        inferer = SlidingWindowInferer(
            model, cpu, batch_size=batch, transfer=transfer, channels_last=layout
        )
        np.testing.assert_allclose(_run(inferer, image, starts), reference, rtol=0, atol=5e-6)


def test_accumulated_window_is_the_softmax_of_the_network():
    model = tiny_model(8)
    image = _image((2, 32, 40, 32))
    out = _run(SlidingWindowInferer(model, torch.device("cpu")), image, np.array([[0, 8, 0]]))
    with torch.no_grad():
        expected = torch.softmax(model(image[None, :, :, 8:40, :]), 1)[0]
    np.testing.assert_allclose(out[:, :, 8:40], expected, atol=1e-6)
    assert out[:, :, :8].abs().max() == 0


def test_window_weights_count_and_importance():
    inferer = SlidingWindowInferer(tiny_model(1), torch.device("cpu"))
    starts = np.array([[0, 0, 0], [8, 0, 0]])
    count = inferer.window_weights((40, 32, 32), starts, (32, 32, 32))
    assert count[0, 0, 0] == 1 and count[10, 5, 5] == 2 and count[39, 0, 0] == 1
    assert count.sum() == 2 * 32**3
    index = SlidingWindowInferer(tiny_model(1), torch.device("cpu"), transfer="index")
    np.testing.assert_array_equal(index.window_weights((40, 32, 32), starts, (32, 32, 32)), count)
    gauss = torch.full((32, 32, 32), 0.5)
    assert inferer.window_weights((40, 32, 32), starts, (32, 32, 32), gauss)[10, 5, 5] == 1.0


def test_windows_outside_the_image_are_rejected():
    inferer = SlidingWindowInferer(tiny_model(1), torch.device("cpu"))
    with pytest.raises(ValueError, match="outside"):
        _run(inferer, _image((2, 32, 32, 32)), np.array([[1, 0, 0]]))
    with pytest.raises(ValueError, match="batch_size"):
        SlidingWindowInferer(tiny_model(1), torch.device("cpu"), batch_size=0)


def test_device_strings():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'"):
        resolve_device("cuda:x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:1")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_engine_matches_cpu():
    model = tiny_model(9)
    image = _image()
    starts = window_grid(image.shape[1:], 32, 8)
    cpu = _run(SlidingWindowInferer(model, torch.device("cpu")), image, starts)
    cuda = SlidingWindowInferer(tiny_model(9), torch.device("cuda"))
    out = torch.zeros((4, *image.shape[1:]), device="cuda")
    cuda.accumulate(image.cuda(), starts, (32, 32, 32), out)
    np.testing.assert_allclose(out.cpu(), cpu, atol=1e-5)
    bf16 = SlidingWindowInferer(tiny_model(9), torch.device("cuda"), precision="bf16")
    out.zero_()
    bf16.accumulate(image.cuda(), starts, (32, 32, 32), out)
    assert (out.cpu() - cpu).abs().max() < 0.2


def test_precision_context_sets_and_restores_cudnn_switches():
    from infant_tissue.inference.devices import precision_context

    cudnn = torch.backends.cudnn
    if not hasattr(getattr(cudnn, "conv", None), "fp32_precision"):
        pytest.skip("PyTorch without torch.backends.cudnn.conv.fp32_precision")
    before = (cudnn.benchmark, cudnn.conv.fp32_precision)
    with precision_context("fp32", torch.device("cuda")):
        assert cudnn.benchmark and cudnn.conv.fp32_precision == "ieee"
    with precision_context("tf32", torch.device("cuda")):
        assert cudnn.conv.fp32_precision == "tf32"
    assert (cudnn.benchmark, cudnn.conv.fp32_precision) == before
    with pytest.raises(ValueError, match="precision"):
        SlidingWindowInferer(tiny_model(1), torch.device("cpu"), precision="fp64")


def test_bf16_autocast_runs_and_stays_close():
    model = tiny_model(5)
    image = _image((2, 32, 32, 40))
    starts = np.array([[0, 0, 0], [0, 0, 8]])
    exact = _run(SlidingWindowInferer(model, torch.device("cpu")), image, starts)
    bf16 = SlidingWindowInferer(model, torch.device("cpu"), precision="bf16")
    assert (_run(bf16, image, starts) - exact).abs().max() < 0.1
