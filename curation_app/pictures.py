"""Item pictures: the catalog's own (http(s) or the media folder), else one drawn as SVG.

A drawn picture is a silhouette of the item's category, filled with its colour and textured
by its material, so a demo catalog without photographs still reads as clothes. Drawings are
cached per (category, colour, material) in the process and by the browser (ETag, one day).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from html import escape
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, send_from_directory, url_for
from flask_login import login_required

from bandit.services.catalog_store import items_by_id
from curation_app.db import get_session

bp = Blueprint("pictures", __name__)
CACHE_SECONDS = 86_400

COLOURS = {
    "black": "#23242a", "white": "#f4f2ee", "navy": "#24365c", "beige": "#d9c7a7",
    "red": "#b8333a", "olive": "#6b7040", "pink": "#e6a2b4", "grey": "#8d9096",
    "camel": "#b88a56", "denim": "#4f6f96", "brown": "#6d4a32", "green": "#3f7a4f",
    "blue": "#3566a8", "yellow": "#e2bd3c", "cream": "#efe6cf", "purple": "#6c4f8f",
}  # fmt: skip
UNKNOWN_COLOUR = "#b9b2a6"

# Silhouettes on a 100 x 120 canvas, one path per category.
SHAPES = {
    "dress": "M38 14 L62 14 L66 34 L60 44 L80 108 L20 108 L40 44 L34 34 Z",
    "top": "M30 22 L42 16 Q50 24 58 16 L70 22 L84 40 L74 48 L68 42 L68 100 L32 100 L32 42 "
    "L26 48 L16 40 Z",
    "blouse": "M32 20 L44 14 L50 26 L56 14 L68 20 L84 62 L74 66 L68 50 L68 104 L32 104 L32 50 "
    "L26 66 L16 62 Z",
    "sweater": "M30 20 L42 14 Q50 20 58 14 L70 20 L88 84 L76 88 L68 52 L68 104 L32 104 L32 52 "
    "L24 88 L12 84 Z",
    "jacket": "M30 18 L44 12 L50 40 L56 12 L70 18 L86 88 L74 90 L68 56 L68 106 L32 106 L32 56 "
    "L26 90 L14 88 Z",
    "coat": "M30 14 L44 10 L50 40 L56 10 L70 14 L86 96 L74 98 L68 60 L70 114 L30 114 L32 60 "
    "L26 98 L14 96 Z",
    "jeans": "M30 12 L70 12 L76 112 L56 112 L50 44 L44 112 L24 112 Z",
    "trousers": "M32 12 L68 12 L72 112 L55 112 L50 40 L45 112 L28 112 Z",
    "skirt": "M36 22 L64 22 L82 100 L18 100 Z",
    "sneakers": "M14 78 L40 66 L56 70 L70 80 L88 84 Q92 94 86 98 L16 98 Q10 90 14 78 Z",
    "boots": "M34 16 L58 16 L58 76 L84 86 Q90 96 84 104 L30 104 Q28 60 34 16 Z",
    "bag": "M22 46 L78 46 L84 104 L16 104 Z M36 46 Q36 20 50 20 Q64 20 64 46 L58 46 "
    "Q58 28 50 28 Q42 28 42 46 Z",
    "scarf": "M30 12 L70 12 L70 30 L58 30 L64 108 L48 108 L44 30 L30 30 Z",
}
GENERIC_SHAPE = "M26 30 L74 30 L74 104 L26 104 Z M40 30 Q40 14 50 14 Q60 14 60 30 Z"

# A texture per material, drawn over the fill inside the silhouette.
TEXTURES = {
    "wool": '<pattern id="t" width="6" height="6" patternUnits="userSpaceOnUse">'
    '<path d="M0 3 Q3 0 6 3" fill="none" stroke="#fff" stroke-opacity=".25"/></pattern>',
    "cashmere": '<pattern id="t" width="5" height="5" patternUnits="userSpaceOnUse">'
    '<circle cx="2.5" cy="2.5" r="1" fill="#fff" fill-opacity=".18"/></pattern>',
    "linen": '<pattern id="t" width="4" height="4" patternUnits="userSpaceOnUse">'
    '<path d="M0 2 H4 M2 0 V4" stroke="#fff" stroke-opacity=".15"/></pattern>',
    "denim": '<pattern id="t" width="5" height="5" patternUnits="userSpaceOnUse">'
    '<path d="M0 5 L5 0" stroke="#fff" stroke-opacity=".22"/></pattern>',
    "jersey": '<pattern id="t" width="4" height="4" patternUnits="userSpaceOnUse">'
    '<path d="M0 1 H4" stroke="#000" stroke-opacity=".12"/></pattern>',
    "leather": '<linearGradient id="t" x1="0" y1="0" x2="1" y2="1">'
    '<stop offset="0" stop-color="#fff" stop-opacity=".35"/>'
    '<stop offset=".5" stop-color="#fff" stop-opacity="0"/></linearGradient>',
    "silk": '<linearGradient id="t" x1="0" y1="0" x2="1" y2="0">'
    '<stop offset="0" stop-color="#fff" stop-opacity="0"/>'
    '<stop offset=".45" stop-color="#fff" stop-opacity=".35"/>'
    '<stop offset="1" stop-color="#fff" stop-opacity="0"/></linearGradient>',
}


@lru_cache(maxsize=2048)
def drawn_picture(category: str, colour: str, material: str) -> str:
    """The SVG drawing of an item of this category, colour and material."""
    shape = SHAPES.get(category.lower(), GENERIC_SHAPE)
    fill = COLOURS.get(colour.lower(), UNKNOWN_COLOUR)
    texture = TEXTURES.get(material.lower(), "")
    overlay = f'<path d="{shape}" fill="url(#t)"/>' if texture else ""
    label = escape(" ".join(part for part in (colour, material, category) if part))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 120" role="img">'
        f"<title>{label}</title><defs>{texture}</defs>"
        '<rect width="100" height="120" fill="#f3efe8"/>'
        f'<path d="{shape}" fill="{fill}" stroke="#3b3a36" stroke-width="1.2" '
        'stroke-linejoin="round"/>'
        f"{overlay}</svg>"
    )


def picture_url(item_id: str, image_url: str | None) -> str:
    """Where the browser gets an item's picture."""
    if image_url and image_url.startswith(("https://", "http://")):
        return image_url
    if image_url:
        return url_for("pictures.media", path=image_url)
    return url_for("pictures.drawn", item_id=item_id)


@bp.get("/pictures/<path:item_id>.svg")
@login_required
def drawn(item_id: str) -> Response:
    """The drawn picture of a catalog item (a generic one if the item is unknown)."""
    item = items_by_id(get_session(), [item_id]).get(item_id)
    attributes = (item.attributes or {}) if item else {}
    svg = drawn_picture(
        item.category if item else "",
        str(attributes.get("color") or ""),
        str(attributes.get("material") or ""),
    )
    etag = hashlib.sha256(svg.encode()).hexdigest()[:20]
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(svg, mimetype="image/svg+xml")
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"private, max-age={CACHE_SECONDS}"
    return response


@bp.get("/media/<path:path>")
@login_required
def media(path: str) -> Response:
    """A picture from the configured media folder (MEDIA_FOLDER); never outside it."""
    folder = current_app.config.get("MEDIA_FOLDER")
    if not folder:
        abort(404, description="no media folder is configured")
    response = send_from_directory(Path(folder).resolve(), path, max_age=CACHE_SECONDS)
    return response
