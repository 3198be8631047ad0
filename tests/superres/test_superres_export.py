"""`impasto export` of a super-resolution model: ONNX Runtime matches torch at several input sizes
and the output is scale x the input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from impasto.cli.main import main
from impasto.methods.ff_export import read_onnx_meta
from impasto.methods.ff_model import load_model, model_payload, save_model
from impasto.methods.superres_train import SuperResTrainConfig
from impasto.nets import build_net
from impasto.nets.superres import equalized_tail_scale

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize(("scale", "end"), [(2, "original"), (4, "original"), (4, "trained")])
def test_onnx_matches_torch_at_two_sizes(tmp_path, scale, end):
    torch.manual_seed(0)
    # "trained": the output end the training recipe builds (linear last stage, scaled output conv)
    extra = {"last_relu": False, "tail_scale": equalized_tail_scale(8)} if end == "trained" else {}
    net, config = build_net("superres", overrides={"scale": scale, "channels": 8, "n_res": 1, **extra})
    with torch.no_grad():
        torch.nn.init.normal_(net.tail.conv.weight, std=0.05 / net.tail_scale)  # a visible detail branch
    model = tmp_path / "sr.pt"
    save_model(model, model_payload(net, "superres", config, SuperResTrainConfig(steps=1, scale=scale), {"name": "x", "sha256": None}, 1, {}))
    onnx_path = tmp_path / "sr.onnx"
    assert main(["-q", "export", str(model), "-o", str(onnx_path)]) == 0
    meta = read_onnx_meta(onnx_path)
    assert meta["scale"] == scale and meta["arch"] == "superres"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = session.get_outputs()[0]
    assert out.shape[2:] == [f"height_x{scale}", f"width_x{scale}"]
    torch_net = load_model(model).net.eval()
    for h, w in ((16, 24), (29, 11)):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            want = torch_net(x).numpy()
        assert got.shape == want.shape == (1, 3, h * scale, w * scale)
        assert np.abs(got - want).max() < 1e-4
