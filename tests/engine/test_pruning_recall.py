"""Pruning keeps the truly best items once item embeddings carry the customer's taste."""

import numpy as np
import pytest

from bandit.engine.catalog import CatalogIndex, CatalogRow
from bandit.engine.pruning import prescore, prescore_parts, prune
from tests.engine_helpers import CONTEXT, small_catalog

ITEMS = 20_000
DIM = 8
TOP = 10


@pytest.mark.parametrize("noise", [0.1, 0.3])
def test_recall_of_the_true_top_10_is_high_with_informative_embeddings(noise: float) -> None:
    rng = np.random.default_rng(5)
    latent = rng.normal(size=(ITEMS, DIM))
    embeddings = latent + rng.normal(scale=noise, size=latent.shape)
    catalog = CatalogIndex(
        CatalogRow(f"i{i}", f"Item {i}", "top", {}, embeddings[i].tolist(), 30.0, 3)
        for i in range(ITEMS)
    )
    recalls = []
    for _ in range(30):
        taste = rng.normal(size=DIM)
        true_top = set(np.argsort(-(latent @ taste))[:TOP].tolist())
        kept = prune(catalog, {"taste": taste.tolist()}, [], 100, 0.1, rng)
        recalls.append(len(true_top & set(kept.indices.tolist())) / TOP)
    recall = float(np.mean(recalls))
    print(f"pruning recall of the true top-{TOP} (K=100 of {ITEMS}, noise {noise}): {recall:.3f}")
    assert recall >= 0.9


def test_uninformative_embeddings_give_low_recall() -> None:
    """The check above has teeth: pure-noise embeddings leave the pre-score blind."""
    rng = np.random.default_rng(6)
    latent = rng.normal(size=(ITEMS, DIM))
    noise = rng.normal(size=latent.shape)
    catalog = CatalogIndex(
        CatalogRow(f"i{i}", f"Item {i}", "top", {}, noise[i].tolist(), 30.0, 3)
        for i in range(ITEMS)
    )
    taste = rng.normal(size=DIM)
    true_top = set(np.argsort(-(latent @ taste))[:TOP].tolist())
    kept = prune(catalog, {"taste": taste.tolist()}, [], 100, 0.1, rng)
    assert len(true_top & set(kept.indices.tolist())) / TOP < 0.5


def test_prescore_is_popularity_plus_its_named_parts() -> None:
    catalog = small_catalog(300)
    context = {**CONTEXT, "budget": 100.0, "taste": [0.5, -0.2, 0.1, 0.3]}
    parts = prescore_parts(catalog, context)
    assert set(parts) == {"style", "category", "budget", "taste"}
    expected = 0.3 * catalog.popularity + sum(parts.values())
    assert np.allclose(prescore(catalog, context), expected, atol=1e-5)
    rows = np.array([3, 50, 299])
    assert np.allclose(prescore(catalog, context, rows), expected[rows], atol=1e-5)
