"""One network for many styles: conditional instance normalisation (Dumoulin, Shlens & Kudlur 2017).

"A Learned Representation for Artistic Style": the Johnson et al. transformation network in which
every instance norm holds one (γ, β) pair per style. The convolutions are shared; a style is
nothing but its γ/β. A *style vector* ``w`` (B x S weights) chooses them: one-hot gives one style,
a convex combination interpolates styles (γ = Σ w_k γ_k, β = Σ w_k β_k).

Each style's γ and β are separate parameters (``gammas.K`` / ``betas.K`` in the state dict), so a
style can be added later by training only its own pair: every other tensor stays bit-identical.

Registers the architectures ``multistyle`` and ``multistyle-small`` (the ``johnson-small`` convolutions).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .johnson import JOHNSON_PRESETS, TransformerNet
from .norm import InstanceNorm
from .protocol import pad_to
from .registry import register_arch

__all__ = ["ConditionalInstanceNorm", "MultiStyleNet", "style_vector"]


class ConditionalInstanceNorm(InstanceNorm):
    """Instance norm with one (γ, β) pair per style, mixed by the style vector in ``self.style``
    (B x S, set by the network before each pass)."""

    def __init__(self, channels: int, n_styles: int, *, relu: bool = False, eps: float = 1e-5, inplace: bool = False) -> None:
        super().__init__(channels, relu=relu, eps=eps, inplace=inplace, affine=False)
        self.gammas = nn.ParameterList([nn.Parameter(torch.ones(channels)) for _ in range(n_styles)])
        self.betas = nn.ParameterList([nn.Parameter(torch.zeros(channels)) for _ in range(n_styles)])
        self.style: torch.Tensor | None = None

    @property
    def n_styles(self) -> int:
        """How many styles this norm holds."""
        return len(self.gammas)

    def scale_shift(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """γ and β of the current style vector: (B, C) each."""
        if self.style is None:
            raise RuntimeError("ConditionalInstanceNorm: no style vector set (call the network through generate)")
        w = self.style.to(dtype=self.gammas[0].dtype)
        return w @ torch.stack(list(self.gammas)), w @ torch.stack(list(self.betas))

    def add_style(self, init: str = "mean") -> None:
        """Append one style: γ/β initialised to the mean of the existing ones (``init="mean"``)
        or to the identity (``"identity"``)."""
        with torch.no_grad():
            if init == "mean" and self.n_styles:
                g, b = torch.stack(list(self.gammas)).mean(0), torch.stack(list(self.betas)).mean(0)
            else:
                g, b = torch.ones_like(self.gammas[0]), torch.zeros_like(self.betas[0])
        self.gammas.append(nn.Parameter(g.clone()))
        self.betas.append(nn.Parameter(b.clone()))


def style_vector(n_styles: int, index: int | None = None, mix: dict[int, float] | None = None) -> torch.Tensor:
    """The 1 x S style vector of one style (``index``) or of a convex combination (``mix``:
    index -> weight, normalised to sum 1). Indices and weights are checked (ConfigError naming
    ``style_index`` or ``style_mix``)."""
    from ..errors import ConfigError

    w = torch.zeros(1, n_styles)
    if mix:
        for k, v in mix.items():
            if not 0 <= k < n_styles:
                raise ConfigError(f"style_mix names style {k}, but the model holds styles 0..{n_styles - 1}", params="style_mix")
            if v < 0:
                raise ConfigError(f"style_mix weight of style {k} must be >= 0, got {v}", params="style_mix")
            w[0, k] += float(v)
        total = float(w.sum())
        if total <= 0:
            raise ConfigError("style_mix weights must not all be 0", params="style_mix")
        return w / total
    k = 0 if index is None else int(index)
    if not 0 <= k < n_styles:
        raise ConfigError(f"style_index {k} is out of range: the model holds styles 0..{n_styles - 1}", params="style_index")
    w[0, k] = 1.0
    return w


class _MultiExport(nn.Module):
    """Export wrapper: ``forward(image, style)`` with the style vector as a graph input."""

    def __init__(self, net: MultiStyleNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        self.net.set_style(style)
        return self.net.core(image)


class MultiStyleNet(TransformerNet):
    """The Johnson network with conditional instance norms for ``n_styles`` styles.

    Every other argument is :class:`~impasto.nets.johnson.TransformerNet`'s (the shared
    convolutions). ``generate(content, style=w)`` takes the style vector (S or B x S weights);
    without one it uses style 0.
    """

    takes = ("content", "style")

    def __init__(self, n_styles: int = 1, channels: Sequence[int] = (32, 64, 128), n_res: int = 5, upsample: str = "nearest", **kwargs: Any) -> None:
        if int(n_styles) < 1:
            raise ValueError(f"n_styles must be >= 1, got {n_styles}")
        kwargs.pop("norm", None)
        super().__init__(tuple(channels), n_res, "instance", upsample, **kwargs)  # type: ignore[arg-type]
        for module in list(self.modules()):
            norm = getattr(module, "norm", None)
            if isinstance(norm, InstanceNorm) and not isinstance(norm, ConditionalInstanceNorm):
                module.norm = ConditionalInstanceNorm(norm.num_features, int(n_styles), relu=norm.relu, eps=norm.eps, inplace=norm.inplace)
        self.config["n_styles"] = int(n_styles)
        del self.config["norm"]

    @property
    def norms(self) -> list[ConditionalInstanceNorm]:
        """The conditional norms, in module order."""
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm)]

    @property
    def n_styles(self) -> int:
        """How many styles the network holds."""
        return int(self.config["n_styles"])

    def add_style(self) -> list[nn.Parameter]:
        """Append one style to every norm; returns the new style's γ/β parameters (train only these)."""
        new: list[nn.Parameter] = []
        for m in self.norms:
            m.add_style()
            new += [m.gammas[-1], m.betas[-1]]
        self.config["n_styles"] += 1
        return new

    def style_parameters(self, index: int) -> list[nn.Parameter]:
        """γ/β parameters of style ``index`` in every norm."""
        return [p for m in self.norms for p in (m.gammas[index], m.betas[index])]

    def set_style(self, style: torch.Tensor | None, batch: int = 1) -> None:
        """Set the style vector (S, 1 x S or B x S; None: style 0) of every norm."""
        if style is None:
            style = style_vector(self.n_styles, 0)
        w = style.reshape(-1, style.shape[-1])
        if w.shape[-1] != self.n_styles:
            raise ValueError(f"style vector has {w.shape[-1]} weights; the network holds {self.n_styles} styles")
        if w.shape[0] == 1 and batch > 1:
            w = w.expand(batch, -1)
        for m in self.norms:
            m.style = w

    def prepare_style(self, vector: torch.Tensor) -> torch.Tensor:
        """The style argument of ``generate``/``core_inputs``: the 1 x S vector as float32."""
        return vector.reshape(1, -1).float()

    def generate(
        self,
        content: torch.Tensor | None,
        *,
        size: tuple[int, int] | None = None,
        seed: int | Sequence[int] = 0,
        origin: tuple[int, int] = (0, 0),
        batch: int = 1,
        style: Any = None,
    ) -> torch.Tensor:
        """Stylise ``content`` with the style vector ``style`` (None: style 0)."""
        if content is None:
            raise ValueError("MultiStyleNet stylises a content image: pass content")
        p = next(self.parameters())
        self.set_style(None if style is None else style.to(device=p.device), batch=int(content.shape[0]))
        return self(content)

    def core_inputs(
        self, content: torch.Tensor | None, size: tuple[int, int], *, seed: int | Sequence[int] = 0, origin: tuple[int, int] = (0, 0), batch: int = 1, style: Any = None
    ) -> dict[str, torch.Tensor]:
        """``image`` (the content padded to the working size) and ``style`` (the B x S vector)."""
        if content is None:
            raise ValueError("MultiStyleNet stylises a content image: pass content")
        w = style_vector(self.n_styles, 0) if style is None else style.reshape(-1, self.n_styles)
        return {"image": pad_to(content, self.padded_size(size)).float().contiguous(), "style": w.float().expand(content.shape[0], -1).contiguous()}

    def example_inputs(self) -> dict[str, torch.Tensor]:
        """A random photo at the working size and the style vector of style 0."""
        return {"image": torch.rand(1, 3, *self.padded_size((64, 48))), "style": style_vector(self.n_styles, 0)}

    def export_module(self) -> nn.Module:
        """``forward(image, style)``: the network with the style vector as an input."""
        return _MultiExport(self)


def _preset(name: str) -> dict[str, Any]:
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in JOHNSON_PRESETS[name].items()}
    return {"n_styles": 1, **config}


register_arch(
    "multistyle",
    "one Johnson network for many styles (conditional instance norm, Dumoulin et al. 2017): mix styles, add styles later",
    MultiStyleNet,
    defaults=_preset("johnson"),
)
register_arch("multistyle-small", "multistyle on the johnson-small network (CPUs/phones)", MultiStyleNet, defaults=_preset("johnson-small"))
