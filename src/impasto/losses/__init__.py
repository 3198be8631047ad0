"""Content, style and regularisation losses: style statistics and loss terms as registered or
composable objects, pure functions, the patch-based MRF loss (:mod:`.mrf`, registered as
``"mrf"``), and the perceptual loss that composes the terms."""

from . import functional, mrf
from .functional import content_loss, gram_matrix, style_loss, tv_loss
from .mrf import MRF, PatchTarget
from .modules import PerceptualLoss, normalise_layer_weights
from .statistics import STYLE_LOSSES, StyleStatistic, get_statistic, register_statistic, statistic_names, unregister_statistic
from .terms import ContentTerm, LossTerm, StyleTerm, TermInputs, TVTerm, weighted_total

__all__ = [
    "functional",
    "mrf",
    "MRF",
    "PatchTarget",
    "STYLE_LOSSES",
    "content_loss",
    "gram_matrix",
    "style_loss",
    "tv_loss",
    "PerceptualLoss",
    "normalise_layer_weights",
    "StyleStatistic",
    "get_statistic",
    "register_statistic",
    "unregister_statistic",
    "statistic_names",
    "LossTerm",
    "ContentTerm",
    "StyleTerm",
    "TVTerm",
    "TermInputs",
    "weighted_total",
]
