"""Catalog search for the review page: JSON pages of items with pictures and budget fit."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import login_required

from bandit.db.models import CatalogItem
from bandit.services import decisions
from bandit.services.catalog_search import search_catalog
from curation_app.console import bp
from curation_app.db import get_session
from curation_app.pictures import picture_url

PER_PAGE = 12
MAX_PAGE = 50
SEARCH_MIN_CHARS = 2
SEARCH_MAX_CHARS = 100


def _customer(event_id: str) -> dict[str, Any]:
    """The request context of the event being reviewed (what the engine was given)."""
    decision = decisions.find_decision(get_session(), event_id) if event_id else None
    return dict(decision.context) if decision else {}


def item_json(item: CatalogItem, budget: Any) -> dict[str, Any]:
    """One search result as the page shows it."""
    attributes = item.attributes or {}
    within = None
    if isinstance(budget, int | float) and item.price is not None:
        within = item.price <= float(budget)
    return {
        "item_id": item.item_id,
        "title": item.title,
        "category": item.category,
        "price": item.price,
        "style": attributes.get("style"),
        "color": attributes.get("color"),
        "brand": attributes.get("brand"),
        "material": attributes.get("material"),
        "picture": picture_url(item.item_id, item.image_url),
        "within_budget": within,
    }


@bp.get("/catalog/search")
@login_required
def catalog_search() -> ResponseReturnValue:
    """Items matching every word of `q`, best fit to the event's customer first, paged."""
    query = request.args.get("q", "").strip()[:SEARCH_MAX_CHARS]
    category = request.args.get("category", "").strip()[:SEARCH_MAX_CHARS] or None
    page_text = request.args.get("page", "1").strip()
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        return jsonify(error=f"page: a whole number from 1 to {MAX_PAGE}"), 400
    if len(query) < SEARCH_MIN_CHARS:
        return jsonify(items=[], page=1, has_more=False)
    customer = _customer(request.args.get("event", "").strip()[:128])
    found = search_catalog(
        get_session(),
        query,
        category=category,
        customer=customer,
        page=int(page_text),
        per_page=PER_PAGE,
    )
    budget = customer.get("budget")
    return jsonify(
        items=[item_json(item, budget) for item in found.items],
        page=found.page,
        has_more=found.has_more,
    )
