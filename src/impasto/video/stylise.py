"""Stylising one frame at a time, for ``impasto video`` and ``impasto webcam``.

- :class:`FastPath`: a trained network (johnson, texture, multistyle, AdaIN, stylepredict) opened
  once; each frame goes through it, then (``consistency="flow"``) is blended with the previous
  output warped by optical flow wherever tracking is confident (:func:`blend_previous`).
- :class:`OptimPath`: per-frame optimisation after Ruder et al. 2016: frame 0 as a still
  (coarse to fine); every later frame starts from the previous stylised frame warped by the
  flow and adds a temporal loss that keeps it close to that warp on reliable pixels.

Frames are HxWx3 uint8 RGB numpy arrays; flows and masks come from :mod:`impasto.video.flow`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import UsageError
from ..progress import Event

__all__ = ["FastPath", "OptimPath", "blend_previous", "CHANGE_SCALE"]

#: how different (mean abs, on [0, 1]) the photo may be from its warped predecessor before a
#: pixel stops trusting the warp: a lighting change or a flow error fades the blend out
CHANGE_SCALE = 0.08


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    frame = np.ascontiguousarray(frame)
    return torch.from_numpy(frame if frame.flags.writeable else frame.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return image.detach()[0].clamp(0, 1).mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def blend_previous(styled: np.ndarray, prev_out: np.ndarray, frame: np.ndarray, prev_frame: np.ndarray, flow: np.ndarray, mask: np.ndarray, blend: float) -> np.ndarray:
    """``styled`` (this frame through the network) mixed with ``prev_out`` warped to this frame:
    weight ``blend`` where the flow is reliable (``mask``) and the photo itself did not change
    along the flow, 0 elsewhere (occlusions, new content). uint8 in, uint8 out."""
    from .flow import warp

    warped_out = warp(prev_out, flow, cubic=True).astype(np.float32)
    change = np.abs(frame.astype(np.float32) - warp(prev_frame, flow).astype(np.float32)).mean(axis=2) / 255.0
    trust = mask.astype(np.float32) * np.exp(-((change / CHANGE_SCALE) ** 2))
    import cv2

    trust = cv2.GaussianBlur(trust, (5, 5), 0)  # soft edges: no seams where confidence ends
    weight = (blend * trust)[..., None]
    out = styled.astype(np.float32) * (1.0 - weight) + warped_out * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class FastPath:
    """A trained model applied frame by frame (``apply`` holds its options; ``styles`` are the
    paintings of an arbitrary-style model)."""

    kind = "model"

    def __init__(self, model: Any, apply: Any, *, styles: Sequence[Any] = (), callback: Callable[[Event], None] | None = None) -> None:
        from ..methods.ff_apply import ModelSession

        self.config = dataclasses.replace(apply, edge=0)  # frames arrive at their final size
        # the runtime is the session's (runtime auto: ONNX Runtime where it is faster): frames go
        # through stylise_photo and the temporal blend works on its outputs, and set_style uses only
        # the runner's net (a PyTorch twin for ONNX Runtime), so no frame needs the torch runtime
        self.session = ModelSession(model, self.config, callback=callback, styles=styles)
        if not self.session.takes_photo:
            raise UsageError(f"{self.session.model_file}: a texture model makes images from noise; video needs a model that stylises photos", params="model")

    def frame(self, frame: np.ndarray) -> np.ndarray:
        """One frame through the network."""
        from ..methods.ff_apply import stylise_photo

        with torch.inference_mode():
            y, _, _ = stylise_photo(self.session, _to_tensor(frame), self.config)
        return _to_uint8(y)

    def set_style(self, index: int) -> None:
        """Multi-style models: switch to style ``index`` (webcam keys)."""
        from ..methods.ff_styles import style_choice

        config = dataclasses.replace(self.config, style_index=index, style_mix="")
        vector = style_choice(self.session.meta, config)
        if vector is None:
            raise UsageError(f"{self.session.model_file}: one style only", params="style_index")
        self.config = config
        self.session.style_vector = vector
        self.session.runner.style = self.session.runner.net.prepare_style(vector)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the model."""
        return self.session.describe("video", self.config)

    def close(self) -> None:
        """Release the session."""
        self.session.close()


class OptimPath:
    """Per-frame optimisation with temporal consistency (Ruder et al. 2016).

    ``gatys`` is the GatysConfig of frame 0 (its ``iterations`` are ``first_iterations``); later
    frames run ``iterations`` steps at the final size only, from the warped previous output,
    with ``temporal_weight`` x mean(mask * (x - warped)^2) added to the loss."""

    kind = "optimisation"

    def __init__(self, styles: Any, gatys: Any, *, iterations: int, first_iterations: int, temporal_weight: float, callback: Callable[[Event], None] | None = None) -> None:
        from ..methods import gatys as gatys_mod
        from ..methods.gatys_method import build_gatys_encoder, style_inputs

        self.first = dataclasses.replace(gatys, iterations=first_iterations, save_every=0)
        self.later = dataclasses.replace(gatys, iterations=iterations, scales=str(gatys.edge), save_every=0, init="warped")
        self.temporal_weight = float(temporal_weight)
        self.styles, self.style_infos = style_inputs(styles, gatys.max_pixels)
        self.encoder = build_gatys_encoder(gatys)
        self.cache = gatys_mod.StyleCache()
        self.callback = callback
        self._gatys = gatys_mod

    def frame(self, frame: np.ndarray, warped: np.ndarray | None = None, mask: np.ndarray | None = None, extra_targets: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> np.ndarray:
        """Stylise ``frame``; ``warped`` (the previous output aligned to it) and ``mask`` make it a
        later frame. ``extra_targets``: more (warped output, mask) pairs from frames further back
        (long-term consistency), each weighted like the first where the nearer ones are unreliable."""
        content = _to_tensor(frame)
        if warped is None:
            out = self._gatys.run(self.first, content, self.styles, encoder=self.encoder, callback=self.callback, style_cache=self.cache)
        else:
            device = next((b.device for b in self.encoder.buffers()), torch.device("cpu"))
            targets = [(warped, mask)] + list(extra_targets)
            covered = np.zeros(frame.shape[:2], np.float32)
            terms = []
            for target, m in targets:  # Ruder's long-term weights: each frame counts where no nearer one did
                own = np.clip(m.astype(np.float32) - covered, 0, 1)
                covered = np.maximum(covered, m.astype(np.float32))
                terms.append((_to_tensor(target).to(device), torch.from_numpy(own)[None, None].to(device)))
            weight = self.temporal_weight

            def temporal(x: torch.Tensor) -> torch.Tensor:
                return weight * sum(((x - t) ** 2 * c).mean() for t, c in terms)  # type: ignore[return-value]

            out = self._gatys.run(self.later, content, self.styles, encoder=self.encoder, callback=self.callback, style_cache=self.cache,
                                  init_image=_to_tensor(warped), extra_loss=temporal)
        if out.stopped == "interrupted":
            raise KeyboardInterrupt
        return _to_uint8(out.image)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the optimisation."""
        from ..config import config_to_dict

        return {"gatys": config_to_dict(self.first), "later_iterations": self.later.iterations, "temporal_weight": self.temporal_weight,
                "styles": [{"path": i.get("path"), "weight": i.get("weight")} for i in self.style_infos]}

    def close(self) -> None:
        """Nothing to release."""
