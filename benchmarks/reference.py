"""Plain-PyTorch reference implementations of the classic style-transfer workloads.

Written the straightforward way, as in neural-style-pt, pytorch/examples' fast_neural_style and
naoto0804's pytorch-AdaIN: ``nn.Sequential`` VGG stacks in torchvision's layout, modules that
pad, convolve, normalise and upsample one step at a time, a Gram matrix by ``bmm``, MSE losses,
``torch.optim.LBFGS`` / ``Adam``. Nothing here imports impasto: these are what impasto's speed is
measured against (``benchmarks/bench_perf.py``), so they must stay plain.

- :class:`VGG`: torchvision's VGG (``features.N`` + ``classifier.N`` keys), any width;
  :func:`write_random_vgg19` writes a seeded random checkpoint of it (the file both sides load).
- :class:`GatysReference`: the VGG19 stack to relu5_1, MSE content loss at relu4_2, Gram style
  loss at relu1_1..relu5_1; :meth:`GatysReference.evaluate` is one forward + backward.
- :class:`TransformerNet`: Johnson et al.'s network as in pytorch/examples (0-255 in and out).
- :class:`JohnsonTrainer`: one training step (VGG16 to relu4_3, content relu2_2, Gram style
  relu1_2/2_2/3_3/4_3, Adam), as pytorch/examples' ``train``.
- :class:`CondTransformerNet`: the same network with conditional instance norm (one gamma/beta per
  style, Dumoulin et al. 2017).
- :class:`AdaINReference`: VGG19 encoder to relu4_1, AdaIN, mirrored decoder (Huang & Belongie).
- :class:`SuperResNet`: a x4 super-resolution net (9x9 conv, residual blocks, nearest x2 + conv
  stages, 9x9 conv, bicubic skip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "VGG", "VGG_BLOCKS", "VGG_WIDTHS", "TINY_WIDTHS", "vgg_layer_index", "write_random_vgg19", "random_vgg_features",
    "gram_matrix", "GatysReference", "TransformerNet", "CondTransformerNet", "JohnsonTrainer", "AdaINReference",
    "SuperResNet", "normalize_batch",
]

#: convolutions per block (torchvision's configurations D and E)
VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
VGG_WIDTHS = (64, 128, 256, 512, 512)
#: 1/8 of the channels (the --quick mode's tiny networks)
TINY_WIDTHS = (8, 16, 32, 64, 64)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------
# VGG
# ---------------------------------------------------------------------------------------------
class VGG(nn.Module):
    """torchvision's VGG: ``features`` (3x3 convs + ReLU, max pooling), ``avgpool``, ``classifier``."""

    def __init__(self, blocks: Sequence[int] = VGG_BLOCKS["vgg19"], widths: Sequence[int] = VGG_WIDTHS, hidden: int = 4096, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for n, c_out in zip(blocks, widths):
            for _ in range(n):
                layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = c_out
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg_layer_index(blocks: Sequence[int], name: str) -> int:
    """Index in ``features`` of a layer named like ``relu4_2`` or ``conv1_1`` or ``pool3``."""
    index = 0
    for b, n in enumerate(blocks, start=1):
        for i in range(1, n + 1):
            if name == f"conv{b}_{i}":
                return index
            if name == f"relu{b}_{i}":
                return index + 1
            index += 2
        if name == f"pool{b}":
            return index
        index += 1
    raise KeyError(name)


def _he_state(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A seeded He-normal state dict for ``model`` (biases zero)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, t in model.state_dict().items():
        if key.endswith("weight") and t.dim() > 1:
            state[key] = torch.randn(t.shape, generator=gen) * (2.0 / t[0].numel()) ** 0.5
        else:
            state[key] = torch.zeros_like(t)
    return state


def write_random_vgg19(path: str | Path, *, seed: int = 0, widths: Sequence[int] = VGG_WIDTHS, hidden: int = 4096) -> Path:
    """Write a seeded random VGG19 state dict (features + classifier, torchvision's keys, about
    548 MB at full width) to ``path``, as torchvision's vgg19 checkpoint is laid out."""
    with torch.device("meta"):
        skeleton = VGG(VGG_BLOCKS["vgg19"], widths, hidden)
    state = {}
    gen = torch.Generator().manual_seed(seed)
    for key, t in skeleton.state_dict().items():
        if key.endswith("weight") and t.dim() > 1:
            state[key] = torch.randn(t.shape, generator=gen).mul_((2.0 / t[0].numel()) ** 0.5)
        else:
            state[key] = torch.zeros(t.shape)
    torch.save(state, path)
    return Path(path)


def random_vgg_features(arch: str, last: str, *, widths: Sequence[int] = VGG_WIDTHS, seed: int = 0) -> nn.Sequential:
    """A frozen, seeded random VGG ``features`` stack cut after the layer ``last``."""
    blocks = VGG_BLOCKS[arch]
    vgg = VGG(blocks, widths, hidden=8, classes=8)
    vgg.load_state_dict(_he_state(vgg, seed))
    features = vgg.features[: vgg_layer_index(blocks, last) + 1]
    return features.eval().requires_grad_(False)


def normalize_batch(batch: torch.Tensor) -> torch.Tensor:
    """0-255 RGB -> ImageNet mean/std (pytorch/examples' ``utils.normalize_batch``)."""
    mean = batch.new_tensor(IMAGENET_MEAN).view(-1, 1, 1)
    std = batch.new_tensor(IMAGENET_STD).view(-1, 1, 1)
    return (batch / 255.0 - mean) / std


def gram_matrix(y: torch.Tensor) -> torch.Tensor:
    """Per-sample Gram matrix of BCHW features, divided by C*H*W (pytorch/examples)."""
    b, ch, h, w = y.size()
    features = y.view(b, ch, w * h)
    return features.bmm(features.transpose(1, 2)) / (ch * h * w)


# ---------------------------------------------------------------------------------------------
# Gatys et al.: neural-style-pt's way
# ---------------------------------------------------------------------------------------------
class GatysReference(nn.Module):
    """The VGG19 feature stack to relu5_1 with frozen weights from a checkpoint file, MSE content
    loss at relu4_2 and Gram style losses at relu1_1..relu5_1 (neural-style-pt's defaults).

    ``checkpoint``: a torchvision-layout VGG19 state dict; it is loaded into a whole VGG19 as a
    user does (``vgg19(); load_state_dict(torch.load(...))``), then ``features`` is cut.
    """

    CONTENT = ("relu4_2",)
    STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

    def __init__(self, checkpoint: str | Path, *, widths: Sequence[int] = VGG_WIDTHS, hidden: int = 4096, content_weight: float = 5.0, style_weight: float = 100.0) -> None:
        super().__init__()
        blocks = VGG_BLOCKS["vgg19"]
        cnn = VGG(blocks, widths, hidden)
        cnn.load_state_dict(torch.load(checkpoint, map_location="cpu"))
        self.features = cnn.features[: vgg_layer_index(blocks, "relu5_1") + 1].eval().requires_grad_(False)
        del cnn
        self.content_at = {vgg_layer_index(blocks, n) for n in self.CONTENT}
        self.style_at = {vgg_layer_index(blocks, n) for n in self.STYLE}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.content_weight, self.style_weight = content_weight, style_weight
        self.content_targets: list[torch.Tensor] = []
        self.style_targets: list[torch.Tensor] = []

    def _walk(self, image: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        x = (image - self.mean) / self.std
        content, style = [], []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.content_at:
                content.append(x)
            if i in self.style_at:
                style.append(x)
        return content, style

    @staticmethod
    def gram(x: torch.Tensor) -> torch.Tensor:
        """neural-style-pt's GramMatrix, divided by the number of elements as its StyleLoss does."""
        _, c, h, w = x.size()
        f = x.view(c, h * w)
        return torch.mm(f, f.t()).div(x.nelement())

    def set_targets(self, content: torch.Tensor, style: torch.Tensor) -> None:
        """Record the content features and the style Gram matrices (1x3xHxW images in [0, 1])."""
        with torch.no_grad():
            self.content_targets = [f.detach() for f in self._walk(content)[0]]
            self.style_targets = [self.gram(f).detach() for f in self._walk(style)[1]]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The total loss of ``image``."""
        content, style = self._walk(image)
        loss = image.new_zeros(())
        for f, t in zip(content, self.content_targets):
            loss = loss + self.content_weight * F.mse_loss(f, t)
        for f, t in zip(style, self.style_targets):
            loss = loss + self.style_weight * F.mse_loss(self.gram(f), t)
        return loss

    def evaluate(self, image: torch.Tensor) -> torch.Tensor:
        """One evaluation: the loss and its gradient w.r.t. ``image`` (left in ``image.grad``)."""
        if image.grad is not None:
            image.grad = None
        loss = self(image)
        loss.backward()
        return loss

    def lbfgs(self, init: torch.Tensor, history_size: int = 100) -> tuple[torch.Tensor, torch.optim.LBFGS]:
        """The image being optimised and an L-BFGS with one evaluation per ``step``."""
        img = init.detach().clone().requires_grad_(True)
        return img, torch.optim.LBFGS([img], max_iter=1, tolerance_change=-1, tolerance_grad=-1, history_size=history_size)

    def step(self, img: torch.Tensor, opt: torch.optim.Optimizer) -> float:
        """One L-BFGS step (one evaluation); the loss before it."""

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = self(img)
            loss.backward()
            return loss

        return float(opt.step(closure).detach())


# ---------------------------------------------------------------------------------------------
# Johnson et al.: pytorch/examples' fast_neural_style
# ---------------------------------------------------------------------------------------------
class ConvLayer(nn.Module):
    """Reflection padding + convolution."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling, then reflection padding + convolution."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, upsample: int | None = None) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class CondInstanceNorm(nn.Module):
    """Instance norm with one (gamma, beta) per style, mixed by a B x S style vector."""

    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))
        self.style: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.style is not None, "set the style vector first"
        g, b = self.style @ self.gamma, self.style @ self.beta
        return F.instance_norm(x, eps=1e-5) * g[:, :, None, None] + b[:, :, None, None]


def _norm(channels: int, n_styles: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True) if n_styles == 0 else CondInstanceNorm(channels, n_styles)


class ResidualBlock(nn.Module):
    """conv-norm-ReLU-conv-norm plus the input."""

    def __init__(self, channels: int, n_styles: int = 0) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = _norm(channels, n_styles)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = _norm(channels, n_styles)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.in1(self.conv1(x)))
        out = self.in2(self.conv2(out))
        return out + residual


class TransformerNet(nn.Module):
    """pytorch/examples' TransformerNet (input and output in 0-255); ``n_styles`` > 0 makes the
    norms conditional (the multistyle network, :class:`CondTransformerNet`)."""

    def __init__(self, n_styles: int = 0) -> None:
        super().__init__()
        self.conv1 = ConvLayer(3, 32, kernel_size=9, stride=1)
        self.in1 = _norm(32, n_styles)
        self.conv2 = ConvLayer(32, 64, kernel_size=3, stride=2)
        self.in2 = _norm(64, n_styles)
        self.conv3 = ConvLayer(64, 128, kernel_size=3, stride=2)
        self.in3 = _norm(128, n_styles)
        self.res1 = ResidualBlock(128, n_styles)
        self.res2 = ResidualBlock(128, n_styles)
        self.res3 = ResidualBlock(128, n_styles)
        self.res4 = ResidualBlock(128, n_styles)
        self.res5 = ResidualBlock(128, n_styles)
        self.deconv1 = UpsampleConvLayer(128, 64, kernel_size=3, stride=1, upsample=2)
        self.in4 = _norm(64, n_styles)
        self.deconv2 = UpsampleConvLayer(64, 32, kernel_size=3, stride=1, upsample=2)
        self.in5 = _norm(32, n_styles)
        self.deconv3 = ConvLayer(32, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


class CondTransformerNet(TransformerNet):
    """TransformerNet with conditional instance norm (``forward(x, style)``, style: 1 x S)."""

    def __init__(self, n_styles: int) -> None:
        super().__init__(n_styles)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        w = style if style is not None else F.one_hot(torch.tensor([0]), self.in1.gamma.shape[0]).float()
        for m in self.modules():
            if isinstance(m, CondInstanceNorm):
                m.style = w.expand(x.shape[0], -1)
        return super().forward(x)


class JohnsonTrainer:
    """One training step of pytorch/examples' ``train``: TransformerNet, frozen VGG16 to relu4_3,
    content MSE at relu2_2, Gram style MSE at relu1_2/relu2_2/relu3_3/relu4_3, Adam.

    ``style``: 1x3xHxW in 0-255; batches are Bx3xHxW in 0-255. ``widths`` (TINY_WIDTHS in quick
    mode) and ``vgg`` pick the loss network.
    """

    STYLE = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    CONTENT = "relu2_2"

    def __init__(self, style: torch.Tensor, batch_size: int, *, vgg: str = "vgg16", widths: Sequence[int] = VGG_WIDTHS, lr: float = 1e-3, content_weight: float = 1e5, style_weight: float = 1e10, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.transformer = TransformerNet()
        self.optimizer = torch.optim.Adam(self.transformer.parameters(), lr)
        self.vgg = random_vgg_features(vgg, "relu4_3", widths=widths, seed=seed)
        blocks = VGG_BLOCKS[vgg]
        self.taps = [vgg_layer_index(blocks, n) for n in self.STYLE]
        self.content_tap = self.STYLE.index(self.CONTENT)
        self.content_weight, self.style_weight = content_weight, style_weight
        with torch.no_grad():
            self.gram_style = [gram_matrix(y) for y in self.features(normalize_batch(style.repeat(batch_size, 1, 1, 1)))]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The VGG16 activations at the four style layers."""
        out = []
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def step(self, x: torch.Tensor) -> float:
        """Forward, loss, backward and Adam step on the batch ``x``; the total loss."""
        n_batch = len(x)
        self.optimizer.zero_grad()
        y = self.transformer(x)
        y = normalize_batch(y)
        x = normalize_batch(x)
        features_y = self.features(y)
        features_x = self.features(x)
        mse = F.mse_loss
        content_loss = self.content_weight * mse(features_y[self.content_tap], features_x[self.content_tap])
        style_loss = y.new_zeros(())
        for ft_y, gm_s in zip(features_y, self.gram_style):
            style_loss = style_loss + mse(gram_matrix(ft_y), gm_s[:n_batch, :, :])
        total = content_loss + self.style_weight * style_loss
        total.backward()
        self.optimizer.step()
        return float(total.detach())


# ---------------------------------------------------------------------------------------------
# AdaIN: naoto0804's pytorch-AdaIN, with a torchvision-layout encoder
# ---------------------------------------------------------------------------------------------
def calc_mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std of BCHW features (as B x C x 1 x 1)."""
    n, c = feat.size()[:2]
    feat_var = feat.view(n, c, -1).var(dim=2) + eps
    feat_std = feat_var.sqrt().view(n, c, 1, 1)
    feat_mean = feat.view(n, c, -1).mean(dim=2).view(n, c, 1, 1)
    return feat_mean, feat_std


def adaptive_instance_normalization(content_feat: torch.Tensor, style_feat: torch.Tensor) -> torch.Tensor:
    """Content features with the style features' channel means and stds."""
    size = content_feat.size()
    style_mean, style_std = calc_mean_std(style_feat)
    content_mean, content_std = calc_mean_std(content_feat)
    normalized = (content_feat - content_mean.expand(size)) / content_std.expand(size)
    return normalized * style_std.expand(size) + style_mean.expand(size)


def adain_decoder(widths: Sequence[int] = VGG_WIDTHS) -> nn.Sequential:
    """The decoder mirroring VGG19 up to relu4_1 (naoto0804's ``net.decoder``)."""
    c1, c2, c3, c4 = widths[:4]

    def conv(c_in: int, c_out: int, relu: bool = True) -> list[nn.Module]:
        return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(c_in, c_out, (3, 3)), *([nn.ReLU()] if relu else [])]

    up = nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(
        *conv(c4, c3), up,
        *conv(c3, c3), *conv(c3, c3), *conv(c3, c3), *conv(c3, c2), up,
        *conv(c2, c2), *conv(c2, c1), up,
        *conv(c1, c1), *conv(c1, 3, relu=False),
    )


class AdaINReference(nn.Module):
    """VGG19 encoder to relu4_1 (ImageNet normalisation inside), AdaIN, the mirrored decoder;
    ``forward(content, style, alpha)`` encodes both images every call (naoto0804's ``test.py``)."""

    def __init__(self, widths: Sequence[int] = VGG_WIDTHS, seed: int = 0) -> None:
        super().__init__()
        self.encoder = random_vgg_features("vgg19", "relu4_1", widths=widths, seed=seed)
        self.decoder = adain_decoder(widths).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """relu4_1 features of a [0, 1] image."""
        return self.encoder((image - self.mean) / self.std)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        content_f, style_f = self.encode(content), self.encode(style)
        feat = adaptive_instance_normalization(content_f, style_f)
        feat = feat * alpha + content_f * (1 - alpha)
        return self.decoder(feat).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Super-resolution (Johnson et al. sec. 4.2, with impasto's choices: see SuperResNet)
# ---------------------------------------------------------------------------------------------
class SuperResNet(nn.Module):
    """x``scale`` super-resolution: 9x9 conv + ReLU, residual blocks (no norm), x2 stages of
    nearest upsampling + reflect-padded 3x3 conv + ReLU, 9x9 conv to RGB, plus the bicubic
    upscale, clamped to [0, 1]. (The paper's network had batch norm, fractionally strided
    convolutions and a tanh output; this is the same function as impasto's ``superres``.)"""

    def __init__(self, scale: int = 4, channels: int = 64, n_res: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Sequential(ConvLayer(3, channels, 9), nn.ReLU())
        self.res = nn.Sequential(*[_PlainResidual(channels) for _ in range(n_res)])
        stages: list[nn.Module] = []
        for _ in range(scale.bit_length() - 1):
            stages += [UpsampleConvLayer(channels, channels, 3, upsample=2), nn.ReLU()]
        self.up = nn.Sequential(*stages)
        self.tail = ConvLayer(channels, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tail(self.up(self.res(self.head(x))))
        bicubic = F.interpolate(x, scale_factor=float(self.scale), mode="bicubic", align_corners=False)
        return (bicubic + y).clamp(0, 1)


class _PlainResidual(nn.Module):
    """conv-ReLU-conv plus the input (no normalisation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvLayer(channels, channels, 3), nn.ReLU(), ConvLayer(channels, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
