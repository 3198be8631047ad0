"""Content, style and regularisation losses (functional + modules)."""

from . import functional
from .functional import STYLE_LOSSES, content_loss, gram_matrix, style_loss, tv_loss
from .modules import PerceptualLoss, normalise_layer_weights

__all__ = ["functional", "STYLE_LOSSES", "content_loss", "gram_matrix", "style_loss", "tv_loss", "PerceptualLoss", "normalise_layer_weights"]
