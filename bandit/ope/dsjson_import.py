"""DSJSON logs (Vowpal Wabbit's and Azure Personalizer's) turned into the replay log format.

Each decision line becomes rounds, candidates and item rows (docs/log-format.md):
- CB lines (`_label_cost`, `_label_probability`, `_labelIndex` or `a`, `p`, `c._multi`): one
  round at position 0; the candidates are `a` (1-based indices into `_multi`) with `p`.
- CCB / slates lines (`c._slots`, `_outcomes`): one round per slot, in slot order; slot k's
  candidates are its `_a` (0-based indices into `_multi`, the logged item first) with `_p`.
Context features (every namespace of `c` but `_multi` and `_slots`) become `context_*`
columns: `name=value` features (ours) and string values (Personalizer's) become text, numbers
stay numbers, repeated names are joined by `|`; nested objects are flattened with `_`.
An action's item id is its `id=` feature when it has one (our own export), otherwise a stable
hash of its features, so the same action gets the same id on every line. Lines without a
label (no reward yet) are skipped and counted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from bandit.engine.vw_format import unescape_name
from bandit.ope.log_format import LIST_SEPARATOR, LogFormatError


@dataclass(frozen=True)
class ImportedLog:
    """The three tables of a replay log and the count of unlabelled lines skipped."""

    rounds: pa.Table
    candidates: pa.Table
    items: pa.Table
    skipped: int


def _flatten(prefix: str, value: Any, out: dict[str, list[Any]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if not str(key).startswith("_"):
                _flatten(f"{prefix}_{key}" if prefix else str(key), inner, out)
        return
    name, text = prefix, value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "=" in prefix and value == 1:  # our own `name=value` token
            name, _, text = prefix.partition("=")
        out.setdefault(unescape_name(name), []).append(text)
        return
    out.setdefault(unescape_name(name), []).append(str(text))


def _features(namespaces: dict[str, Any]) -> dict[str, Any]:
    """Namespace objects as one flat mapping of feature name -> value (lists joined by |)."""
    collected: dict[str, list[Any]] = {}
    for namespace in namespaces.values():
        if isinstance(namespace, dict):
            _flatten("", namespace, collected)
        elif isinstance(namespace, list):
            for element in namespace:
                _flatten("", element, collected)
    flat: dict[str, Any] = {}
    for name, values in collected.items():
        if len(values) == 1:
            flat[name] = values[0]
        else:
            flat[name] = LIST_SEPARATOR.join(str(v) for v in values)
    return flat


def _item_id(action: dict[str, Any], features: dict[str, Any]) -> str:
    if "id" in features and isinstance(features["id"], str):
        return features["id"]
    digest = hashlib.sha1(json.dumps(action, sort_keys=True).encode()).hexdigest()[:12]
    return f"a_{digest}"


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open("rb")
    except OSError as error:
        raise LogFormatError(f"dsjson: cannot read {path}: {error}") from error
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                raise LogFormatError(f"dsjson: {path} line {number} is not UTF-8 text") from error
            if not text:
                continue
            try:
                document = json.loads(text)
            except json.JSONDecodeError as error:
                raise LogFormatError(
                    f"dsjson: {path} line {number} is not JSON: {error}"
                ) from error
            if not isinstance(document, dict):
                raise LogFormatError(f"dsjson: {path} line {number} is not a JSON object")
            yield number, document


class _Tables:
    def __init__(self) -> None:
        self.rounds: list[dict[str, Any]] = []
        self.candidates: list[dict[str, Any]] = []
        self.items: dict[str, dict[str, Any]] = {}

    def actions(self, multi: list[Any]) -> list[str]:
        ids = []
        for action in multi:
            features = _features(action if isinstance(action, dict) else {})
            item = _item_id(action, features)
            self.items.setdefault(item, {k: v for k, v in features.items() if k != "id"})
            ids.append(item)
        return ids

    def add(
        self,
        base: dict[str, Any],
        position: int,
        ids: list[str],
        ranked: list[int],
        probabilities: list[float],
        cost: float,
    ) -> None:
        self.rounds.append(
            {
                **base,
                "position": position,
                "action": ids[ranked[0]],
                "reward": -float(cost),
                "propensity": float(probabilities[0]),
            }
        )
        for index, probability in zip(ranked, probabilities, strict=True):
            self.candidates.append(
                {
                    "event_id": base["event_id"],
                    "position": position,
                    "action": ids[index],
                    "propensity": float(probability),
                }
            )


def _require(document: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in document]
    if missing:
        raise LogFormatError(f"dsjson: {where} has no {', '.join(missing)}")


def import_dsjson(path: Path) -> ImportedLog:
    """Read a DSJSON file into replay-log tables; the first bad line is named."""
    tables = _Tables()
    skipped = 0
    for number, document in _lines(path):
        where = f"{path} line {number}"
        context = document.get("c")
        if not isinstance(context, dict) or not isinstance(context.get("_multi"), list):
            raise LogFormatError(f"dsjson: {where} has no c._multi action list")
        shared = {k: v for k, v in context.items() if not k.startswith("_")}
        event_id = str(document.get("EventId", f"line{number}"))
        base = {
            "event_id": event_id,
            "timestamp": str(document.get("Timestamp", "1970-01-01T00:00:00Z")),
            **{f"context_{k}": v for k, v in _features(shared).items()},
        }
        ids = tables.actions(context["_multi"])
        if "_outcomes" in document or "_slots" in context:
            outcomes = document.get("_outcomes") or []
            if not outcomes or any("_label_cost" not in o for o in outcomes):
                skipped += 1
                continue
            for position, outcome in enumerate(outcomes):
                _require(outcome, ("_a", "_p"), f"{where} _outcomes[{position}]")
                tables.add(
                    base,
                    position,
                    ids,
                    list(outcome["_a"]),
                    list(outcome["_p"]),
                    outcome["_label_cost"],
                )
            continue
        if "_label_cost" not in document:
            skipped += 1
            continue
        _require(document, ("_label_probability", "a", "p"), where)
        logged = [int(i) - 1 for i in document["a"]]
        chance = dict(zip(logged, (float(p) for p in document["p"]), strict=True))
        chosen = int(document.get("_labelIndex", logged[0]))
        chance[chosen] = float(document["_label_probability"])
        ranked = [chosen, *[i for i in logged if i != chosen]]
        probabilities = [chance[i] for i in ranked]
        tables.add(base, 0, ids, ranked, probabilities, document["_label_cost"])
    if not tables.rounds:
        raise LogFormatError(f"dsjson: {path} holds no labelled decision")
    items = [{"item_id": item, **features} for item, features in tables.items.items()]
    return ImportedLog(
        pa.Table.from_pylist(tables.rounds),
        pa.Table.from_pylist(tables.candidates),
        pa.Table.from_pylist(items),
        skipped,
    )
