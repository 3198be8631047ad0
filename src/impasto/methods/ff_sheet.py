"""Contact sheets: one photo in every style a model holds (multi-style) or in every painting
given (AdaIN), side by side and labelled; the photo itself comes first."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ConfigError

if TYPE_CHECKING:
    from .ff_apply import ApplyConfig, ModelSession

__all__ = ["contact_sheet", "compose_sheet"]


def compose_sheet(cells: list[torch.Tensor], labels: list[str], *, columns: int | None = None, gap: int = 8) -> torch.Tensor:
    """Lay out equally sized 1x3xHxW images in a grid on white, each labelled below; 1x3xH'xW'."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = cells[0].shape[-2:]
    columns = columns or math.ceil(math.sqrt(len(cells)))
    rows = math.ceil(len(cells) / columns)
    font_px = max(10, min(32, w // 16))
    label_h = font_px + 8
    sheet = Image.new("RGB", (columns * w + (columns + 1) * gap, rows * (h + label_h) + (rows + 1) * gap), "white")
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=font_px)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for i, (cell, label) in enumerate(zip(cells, labels)):
        r, c = divmod(i, columns)
        x0, y0 = gap + c * (w + gap), gap + r * (h + label_h + gap)
        array = (cell[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        sheet.paste(Image.fromarray(array), (x0, y0))
        text = label
        while len(text) > 4 and draw.textlength(text, font=font) > w:
            text = text[:-2]
        if text != label:
            text = text[:-1] + "…"
        draw.text((x0 + 2, y0 + h + 3), text, fill="black", font=font)
    return torch.from_numpy(np.asarray(sheet, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def contact_sheet(session: ModelSession, photo: torch.Tensor, config: ApplyConfig) -> tuple[torch.Tensor, list[str]]:
    """The photo (resized to ``config.edge``) and one stylisation per style; returns the sheet and
    its labels. A multi-style model shows each style it holds; an AdaIN model each painting."""
    from ..image.resize import resize_to_edge
    from ..nets.multistyle import style_vector
    from .ff_apply import stylise_photo
    from .ff_styles import model_styles

    net = session.runner.net
    if config.edge and max(photo.shape[-2:]) != config.edge:
        photo = resize_to_edge(photo, config.edge)
    cells, labels = [photo], ["photo"]
    if session.style_vector is not None:
        saved = session.runner.style
        names = {int(x["index"]): str(x.get("name")) for x in model_styles(session.meta)}
        try:
            for k in range(int(session.style_vector.shape[-1])):
                session.runner.style = net.prepare_style(style_vector(int(session.style_vector.shape[-1]), k))
                cells.append(stylise_photo(session, photo, config)[0])
                labels.append(f"{k}: {names.get(k, k)}")
        finally:
            session.runner.style = saved
    elif session.arbitrary:
        paintings, weights, masks = session.paintings, session.weights, session.masks
        try:
            for painting in paintings:
                session.paintings, session.weights, session.masks = [painting], [], []
                cells.append(stylise_photo(session, photo, config)[0])
                labels.append(painting[1])
        finally:
            session.paintings, session.weights, session.masks = paintings, weights, masks
    else:
        raise ConfigError(f"sheet: {session.model_file} holds one style; a contact sheet needs a multi-style model or an AdaIN model with paintings", params="sheet")
    return compose_sheet(cells, labels), labels
