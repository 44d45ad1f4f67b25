"""The replay log: one row per (event, position), validated at the edge, held as column arrays.

A log is up to three tables (see docs/log-format.md): the rounds (required), the logging
policy's full distribution over the candidates at each position (optional, needed by targets
that choose among the candidates) and item features keyed by item id (optional).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bandit.engine.vocabulary import RewardSource
from bandit.ope.distinct_text import equal_rows, surely_distinct

REQUIRED_COLUMNS = ("event_id", "timestamp", "position", "action", "reward", "propensity")
CANDIDATE_COLUMNS = ("event_id", "position", "action", "propensity")
CONTEXT_PREFIX = "context_"
MARGINAL_PROPENSITY = "marginal_propensity"
REWARD_SOURCE = "reward_source"
ITEM_ID = "item_id"
SUM_TOLERANCE = 1e-6
# Multi-valued categorical context values (lists of strings) are joined with this; VW tokens
# never contain it, so the list can be rebuilt exactly.
LIST_SEPARATOR = "|"


class LogFormatError(ValueError):
    """A log or target file breaks the format; the message names the column and first bad row."""


@dataclass(frozen=True)
class LogPaths:
    """Where the three tables of one log live: FILE, FILE's `.candidates` and `.items` siblings."""

    rounds: Path
    candidates: Path
    items: Path

    @classmethod
    def for_file(cls, path: Path) -> LogPaths:
        """The sibling table paths for a rounds file `log.parquet` or `log.csv`."""
        stem, suffix = path.with_suffix(""), path.suffix
        return cls(path, Path(f"{stem}.candidates{suffix}"), Path(f"{stem}.items{suffix}"))


@dataclass(frozen=True)
class KeyedRows:
    """(event, position) keys of a table, encoded against a log's events, in table order."""

    row: np.ndarray  # index of the log row with the same (event, position); -1 when none
    action: np.ndarray  # code in the log's action vocabulary
    probability: np.ndarray


@dataclass(frozen=True)
class ReplayLog:
    """A validated log as column arrays; rows keep the file's order."""

    rounds: pa.Table
    event: np.ndarray  # code of the event id per row, in [0, number of events)
    event_ids: pa.Array
    position: np.ndarray
    action: np.ndarray  # code of the action per row in `actions`
    actions: pa.Array  # action vocabulary: logged actions, then candidate and item ids
    reward: np.ndarray
    propensity: np.ndarray
    candidates: KeyedRows | None
    items: pd.DataFrame | None
    # P(the logged item at its position | context), whatever came before: for `iips`.
    marginal_propensity: np.ndarray | None = None
    # Whose judgement each reward is (RewardSource values), when the log says; `choose_reward`
    # relabels the rows whose reward it replaces (`curator`, `customer+curator`, ...).
    reward_source: np.ndarray | None = None

    @property
    def rows(self) -> int:
        """Number of (event, position) rows."""
        return int(self.reward.size)

    def context_frame(self) -> pd.DataFrame:
        """The `context_*` columns, prefix removed."""
        names = [n for n in self.rounds.column_names if n.startswith(CONTEXT_PREFIX)]
        frame = self.rounds.select(names).to_pandas()
        return frame.rename(columns=lambda n: n[len(CONTEXT_PREFIX) :])

    def column(self, name: str) -> np.ndarray | None:
        """An optional column of the rounds table as numpy, or None when absent."""
        if name not in self.rounds.column_names:
            return None
        return self.rounds.column(name).to_numpy(zero_copy_only=False)

    def rows_for(
        self, table: pa.Table, what: str, allow_new_actions: bool = False
    ) -> tuple[KeyedRows, pa.Array]:
        """Encode a (event_id, position, action, probability) table against this log.

        Returns the keyed rows and the action vocabulary extended by actions the log never saw
        (only when `allow_new_actions`). Raises when a key does not join a log row.
        """
        _require(table, CANDIDATE_COLUMNS[:3], what)
        event_code = self._event_codes(table.column("event_id"))
        positions = _integers(table, "position", what)
        known = event_code >= 0
        if known.all():
            row = self._lookup(event_code, positions)
        else:
            row = np.full(table.num_rows, -1, dtype=np.int64)
            row[known] = self._lookup(event_code[known], positions[known])
        del known
        bad = np.flatnonzero(row < 0)
        if bad.size:
            first = int(bad[0])
            reason = (
                "event_id not in the log"
                if event_code[first] < 0
                else ("no log row has this (event_id, position)")
            )
            raise LogFormatError(
                f"{what}: row {first + 1} (event_id {table.column('event_id')[first].as_py()!r}, "
                f"position {positions[first]}) does not join the log: {reason}"
            )
        del event_code
        actions = table.column("action")
        code = _codes_in(actions, self.actions)
        vocabulary = self.actions
        unknown = code < 0
        if unknown.any():
            actions = actions.cast(pa.string())
            if not allow_new_actions:
                first = int(np.flatnonzero(unknown)[0])
                raise LogFormatError(
                    f"{what}: row {first + 1} names action {actions[first].as_py()!r}, which "
                    "is in no log table"
                )
            extra = _flat(pc.unique(pc.filter(actions, pa.array(unknown))))
            vocabulary = pa.concat_arrays([self.actions, extra])
            code = pc.index_in(actions, value_set=vocabulary).to_numpy(zero_copy_only=False)
        probability = (
            _probabilities(table, what)
            if "probability" in table.column_names
            else (_propensities(table, what))
        )
        return KeyedRows(row, code.astype(np.int64), probability), vocabulary

    def _event_codes(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Code of each event id in `event_ids`, -1 when the log has no such event.

        Only the first row of each run of equal ids is hashed; a table listing events in the
        log's order matches position for position, and only the rest goes through `index_in`.
        """
        values = ids.cast(pa.string())
        starts = _run_starts(values)
        code = np.full(len(starts), -1, dtype=np.int64)
        aligned = min(len(starts), len(self.event_ids))
        if aligned:
            # Compared in place in the Arrow buffers (no gather of the heads), else by pyarrow.
            same = equal_rows(values, starts[:aligned], self.event_ids.slice(0, aligned))
            if same is None:
                heads = values.take(pa.array(starts[:aligned]))
                equal = pc.equal(heads, self.event_ids.slice(0, aligned))
                same = _bools(equal.fill_null(False))
            matched = np.flatnonzero(same)
            code[matched] = matched
        rest = np.flatnonzero(code < 0)
        if rest.size:
            heads = values.take(pa.array(starts[rest]))
            code[rest] = _found_codes(pc.index_in(heads, value_set=self.event_ids))
        return _expand_runs(code, starts, len(ids))

    def _lookup(self, event_code: np.ndarray, position: np.ndarray) -> np.ndarray:
        span = int(max(self.position.max(initial=0), position.max(initial=0))) + 1
        cells = len(self.event_ids) * span
        if cells <= 4 * self.rows + 1024:
            # Dense (event, position) -> row table: one scatter, one gather.
            dtype = np.int32 if self.rows < 2**31 - 1 else np.int64
            table = np.full(cells, -1, dtype=dtype)
            table[self.event * span + self.position] = np.arange(self.rows, dtype=dtype)
            return table[event_code * span + position].astype(np.int64)
        # (event, position) pairs packed into one sortable integer key, looked up by bisection.
        keys = self.event.astype(np.int64) * span + self.position
        order = np.argsort(keys, kind="stable")
        wanted = event_code * span + position
        at = np.searchsorted(keys[order], wanted)
        at = np.minimum(at, keys.size - 1)
        found = keys[order][at] == wanted
        return np.where(found, order[at], -1)


def read_table(path: Path, what: str, dictionary: tuple[str, ...] = ()) -> pa.Table:
    """Read a Parquet or CSV file into an Arrow table.

    Parquet columns named in `dictionary` are read dictionary-encoded (for few distinct values
    over many rows, such as the action of a target or candidates table).
    """
    if not path.exists():
        raise LogFormatError(f"{what}: file {path} does not exist")
    try:
        if path.suffix == ".parquet":
            names = set(pq.read_schema(path).names) if dictionary else set()
            encoded = [name for name in dictionary if name in names]
            return pq.read_table(path, read_dictionary=encoded or None)
        if path.suffix == ".csv":
            _check_utf8(path, what)
            # Ids stay text even when they look like numbers.
            types = {name: pa.string() for name in ("event_id", "action", ITEM_ID)}
            return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except (pa.ArrowInvalid, OSError) as error:
        raise LogFormatError(f"{what}: cannot read {path}: {error}") from error
    raise LogFormatError(f"{what}: {path.name} must end in .parquet or .csv")


def _check_utf8(path: Path, what: str) -> None:
    """CSV text must be UTF-8: name the first bad row and column instead of mangling it."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed = 0
    lines_before = 0
    header = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            if not header:
                header = chunk.split(b"\n", 1)[0]
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                line_start = chunk.rfind(b"\n", 0, error.start) + 1
                line = lines_before + chunk.count(b"\n", 0, error.start)
                field = chunk[line_start : error.start].count(b",")
                names = header.decode("utf-8", errors="replace").strip().split(",")
                column = names[field] if field < len(names) else f"number {field + 1}"
                raise LogFormatError(
                    f"{what}: {path} is not UTF-8 text; first bad row {line}, column {column}"
                ) from error
            consumed += len(chunk)
            lines_before += chunk.count(b"\n")


def load_log(path: Path) -> ReplayLog:
    """Read and validate a log file and its optional `.candidates` and `.items` siblings."""
    paths = LogPaths.for_file(path)
    rounds = read_table(paths.rounds, "log")
    candidates = (
        read_table(paths.candidates, "candidates", dictionary=("action",))
        if paths.candidates.exists()
        else None
    )
    items = read_table(paths.items, "items") if paths.items.exists() else None
    try:
        return build_log(rounds, candidates, items)
    except LogFormatError as error:
        # The message starts with the table it is about: name that table's file first.
        table = str(error).split(":", 1)[0]
        where = {"candidates": paths.candidates, "items": paths.items}.get(table, paths.rounds)
        raise LogFormatError(f"{where}: {error}") from error


def build_log(
    rounds: pa.Table, candidates: pa.Table | None = None, items: pa.Table | None = None
) -> ReplayLog:
    """Validate the tables of a log and encode them as arrays."""
    _require(rounds, REQUIRED_COLUMNS, "log")
    if rounds.num_rows == 0:
        raise LogFormatError("log: the log has no rows")
    event, event_ids = _encode_events(rounds)
    position = _integers(rounds, "position", "log")
    _check_unique_keys(rounds, event, position)
    _check_timestamps(rounds)
    reward = _numbers(rounds, "reward", "log")
    propensity = _propensities(rounds, "log")
    action_column = rounds.column("action").cast(pa.string())
    _refuse_empty(rounds, action_column, "action")
    # One hash pass for the logged actions' vocabulary (first-appearance order, as pc.unique
    # gives it) and every row's code in it: item and candidate ids are appended after it.
    logged = pc.dictionary_encode(action_column).combine_chunks()
    vocabulary = logged.dictionary
    item_frame = None
    if items is not None:
        _require(items, (ITEM_ID,), "items")
        item_frame = items.to_pandas().drop_duplicates(ITEM_ID).set_index(ITEM_ID)
        item_ids = pa.array(item_frame.index.astype(str), type=pa.string())
        vocabulary = _union(vocabulary, item_ids)
    if candidates is not None:
        _require(candidates, CANDIDATE_COLUMNS, "candidates")
        vocabulary = _union(vocabulary, candidates.column("action").cast(pa.string()))
    action = logged.indices.to_numpy(zero_copy_only=False)
    marginal = None
    if MARGINAL_PROPENSITY in rounds.column_names:
        marginal = _propensities(rounds, "log", MARGINAL_PROPENSITY)
    log = ReplayLog(
        rounds=rounds,
        event=event,
        event_ids=event_ids,
        position=position,
        action=action.astype(np.int64),
        actions=vocabulary,
        reward=reward,
        propensity=propensity,
        candidates=None,
        items=item_frame,
        marginal_propensity=marginal,
        reward_source=_reward_sources(rounds),
    )
    if candidates is None:
        return log
    keyed, _ = log.rows_for(candidates, "candidates")
    check_distribution(keyed, log.rows, "candidates", "propensity")
    _check_logged_action_in_candidates(log, keyed)
    return ReplayLog(**{**log.__dict__, "candidates": keyed})


def check_distribution(keyed: KeyedRows, rows: int, what: str, column: str) -> None:
    """Every log row's distribution sums to 1; rows without one are refused."""
    totals = np.bincount(keyed.row, weights=keyed.probability, minlength=rows)
    covered = np.bincount(keyed.row, minlength=rows) > 0
    if not covered.all():
        first = int(np.flatnonzero(~covered)[0])
        raise LogFormatError(f"{what}: no rows for log row {first + 1}; every row needs one")
    bad = np.flatnonzero(np.abs(totals - 1.0) > SUM_TOLERANCE)
    if bad.size:
        first = int(bad[0])
        raise LogFormatError(
            f"{what}: {column} of log row {first + 1}'s (event_id, position) sums to "
            f"{totals[first]:.6g}, not 1"
        )


def _check_logged_action_in_candidates(log: ReplayLog, keyed: KeyedRows) -> None:
    matches = keyed.action == log.action[keyed.row]
    has_logged = np.bincount(keyed.row[matches], minlength=log.rows) > 0
    if not has_logged.all():
        first = int(np.flatnonzero(~has_logged)[0])
        raise LogFormatError(
            f"candidates: the logged action of log row {first + 1} is not among its candidates"
        )
    gap = np.abs(keyed.probability[matches] - log.propensity[keyed.row[matches]])
    if (gap > SUM_TOLERANCE).any():
        first = int(keyed.row[matches][np.argmax(gap > SUM_TOLERANCE)])
        raise LogFormatError(
            f"candidates: propensity of the logged action differs from the log's at log row "
            f"{first + 1}"
        )


def _encode_events(rounds: pa.Table) -> tuple[np.ndarray, pa.Array]:
    """Event code per row (first-appearance order) and the distinct event ids.

    Only run heads (rows whose id differs from the previous row's) are hashed, so a log with
    an event's positions on consecutive rows encodes each event id once.
    """
    values = rounds.column("event_id").cast(pa.string())
    _refuse_empty(rounds, values, "event_id")
    starts = _run_starts(values)
    heads = _flat(values.take(pa.array(starts)))
    del values
    if surely_distinct(heads):  # each event's rows consecutive: run k is event k
        return _expand_runs(np.arange(len(heads)), starts, rounds.num_rows), heads
    encoded = pc.dictionary_encode(heads)
    head_code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return _expand_runs(head_code, starts, rounds.num_rows), encoded.dictionary


def _refuse_empty(table: pa.Table, values: pa.ChunkedArray | pa.Array, column: str) -> None:
    """Empty cells (null, or '' as CSV reads them) are refused with the first bad row."""
    empty = pc.or_kleene(pc.is_null(values), pc.equal(values, "")).fill_null(True)
    if pc.any(empty).as_py():
        _raise_first(table, _bools(empty), column, "log", "has an empty cell")


def _run_starts(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows whose value differs from the previous row's (row 0 always); nulls start a run."""
    n = len(values)
    change = np.ones(n, dtype=bool)
    if n > 1:
        differs = pc.not_equal(values.slice(1), values.slice(0, n - 1)).fill_null(True)
        change[1:] = _bools(differs)
    return np.flatnonzero(change)


def _expand_runs(head_value: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Each run's value repeated over its rows."""
    return np.repeat(head_value, np.diff(np.append(starts, n)))


def _bools(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _found_codes(found: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """`index_in` results as int64, -1 where not found."""
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _codes_in(values: pa.Array | pa.ChunkedArray, value_set: pa.Array) -> np.ndarray:
    """Index of each value in `value_set` as int64, -1 when absent.

    A dictionary-encoded column without nulls looks up only its dictionaries, chunk by chunk.
    """
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    if values.null_count or not all(pa.types.is_dictionary(c.type) for c in chunks):
        return _found_codes(pc.index_in(values.cast(pa.string()), value_set=value_set))
    parts = [np.zeros(0, dtype=np.int64)]
    for chunk in chunks:
        lookup = _found_codes(pc.index_in(chunk.dictionary.cast(pa.string()), value_set=value_set))
        parts.append(lookup[chunk.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(parts)


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _union(first: pa.Array, second: pa.Array | pa.ChunkedArray) -> pa.Array:
    new = pc.filter(second, pc.invert(pc.is_in(second, value_set=first)))
    return pa.concat_arrays([first, _flat(pc.unique(new)).cast(pa.string())])


def _require(table: pa.Table, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise LogFormatError(f"{what}: missing column(s) {', '.join(missing)}")


def _raise_first(table: pa.Table, bad: np.ndarray, column: str, what: str, problem: str) -> None:
    first = int(np.flatnonzero(bad)[0])
    value = table.column(column)[first].as_py()
    raise LogFormatError(f"{what}: column {column} {problem}; first bad row {first + 1}: {value!r}")


def _numbers(table: pa.Table, column: str, what: str) -> np.ndarray:
    raw = table.column(column)
    if pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type):
        values = raw.cast(pa.float64()).to_numpy(zero_copy_only=False)
    else:
        values = pd.to_numeric(raw.to_pandas(), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        _raise_first(table, bad, column, what, "must hold finite numbers")
    return np.asarray(values, dtype=np.float64)


def _integers(table: pa.Table, column: str, what: str) -> np.ndarray:
    raw = table.column(column)
    if pa.types.is_integer(raw.type) and raw.null_count == 0:
        whole = np.asarray(raw.to_numpy(), dtype=np.int64)
        if (whole < 0).any():
            _raise_first(table, whole < 0, column, what, "must hold whole numbers >= 0")
        return whole
    values = _numbers(table, column, what)
    bad = (values < 0) | (values != np.floor(values))
    if bad.any():
        _raise_first(table, bad, column, what, "must hold whole numbers >= 0")
    return values.astype(np.int64)


def _propensities(table: pa.Table, what: str, column: str = "propensity") -> np.ndarray:
    values = _numbers(table, column, what)
    bad = (values <= 0.0) | (values > 1.0)
    if bad.any():
        _raise_first(table, bad, column, what, "must be in (0, 1]")
    return values


def _reward_sources(rounds: pa.Table) -> np.ndarray | None:
    """The `reward_source` column as text, every value one of RewardSource's."""
    if REWARD_SOURCE not in rounds.column_names:
        return None
    column = rounds.column(REWARD_SOURCE).cast(pa.string())
    # Logs exported before rounds said `curator_proxy` wrote `curator` for the same thing.
    column = pc.replace_substring_regex(column, "^curator$", RewardSource.CURATOR_PROXY.value)
    known = pc.is_in(column, value_set=pa.array([s.value for s in RewardSource]))
    bad = ~np.asarray(known.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    if bad.any():
        allowed = ", ".join(s.value for s in RewardSource)
        _raise_first(rounds, bad, REWARD_SOURCE, "log", f"must be one of {allowed}")
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def _probabilities(table: pa.Table, what: str) -> np.ndarray:
    values = _numbers(table, "probability", what)
    bad = (values < 0.0) | (values > 1.0)
    if bad.any():
        _raise_first(table, bad, "probability", what, "must be in [0, 1]")
    return values


def _check_unique_keys(table: pa.Table, event: np.ndarray, position: np.ndarray) -> None:
    span = int(position.max()) + 1
    keys = event * span + position
    cells = (int(event.max()) + 1) * span
    if cells <= 4 * keys.size + 1024 and np.bincount(keys, minlength=cells).max() <= 1:
        return
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if repeated.size:
        first = int(order[1:][repeated].min())
        raise LogFormatError(
            f"log: columns (event_id, position) must be unique; row {first + 1} repeats "
            f"({table.column('event_id')[first].as_py()!r}, {position[first]})"
        )


def _check_timestamps(table: pa.Table) -> None:
    column = table.column("timestamp")
    if pa.types.is_timestamp(column.type):
        bad = np.asarray(pc.is_null(column))
    else:
        parsed = pd.to_datetime(column.to_pandas(), errors="coerce", utc=True, format="ISO8601")
        bad = parsed.isna().to_numpy()
    if bad.any():
        _raise_first(table, bad, "timestamp", "log", "must hold ISO 8601 date-times")


def write_table(table: pa.Table, path: Path) -> None:
    """Write a table as Parquet or CSV, by suffix."""
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        raise LogFormatError(f"{path.name}: the file must end in .parquet or .csv")


def write_log(rounds: pa.Table, candidates: pa.Table, items: pa.Table, path: Path) -> LogPaths:
    """Write the three tables of a log next to each other; returns their paths."""
    paths = LogPaths.for_file(path)
    for table, target in (
        (rounds, paths.rounds),
        (candidates, paths.candidates),
        (items, paths.items),
    ):
        write_table(table, target)
    return paths
