"""`hitl export --partitioned`: the log streamed from the database into day partitions.

Decisions are read `chunk` at a time by id, so memory holds one chunk, never the whole log.
Each chunk's rows are split by the day (UTC) of their decision and written as one part per day:
`OUT/day=YYYY-MM-DD/part-NNNNNN.parquet` with its `.candidates` and `.items` siblings. Every
event lies inside one part, as partitioned replay requires; read the dataset back with
`hitl replay --log 'OUT/day=*/*.parquet'` (or `--log OUT`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
from sqlalchemy.orm import Session

from bandit.ope.log_format import write_log
from bandit.services.export import export_log

DEFAULT_CHUNK = 5000


@dataclass(frozen=True)
class PartitionedExport:
    """What a streamed export wrote."""

    rows: int
    pending: int
    parts: int
    days: tuple[str, ...]


def export_partitioned(
    session: Session, out: Path, chunk: int = DEFAULT_CHUNK
) -> PartitionedExport:
    """Write every decision with a reward as day partitions, `chunk` decisions at a time."""
    if chunk < 1:
        raise ValueError(f"chunk: must be at least 1; got {chunk}")
    out.mkdir(parents=True, exist_ok=True)
    rows = pending = parts = 0
    days: set[str] = set()
    after: int | None = None
    number = 0
    while True:
        exported = export_log(session, after_id=after, limit=chunk)
        if exported.last_decision_id is None:
            break
        after = exported.last_decision_id
        number += 1
        pending += exported.pending
        rounds = exported.rounds
        if rounds.num_rows:
            day_of_row = pc.strftime(rounds.column("timestamp"), format="%Y-%m-%d")
            for day in pc.unique(day_of_row).to_pylist():
                mine = rounds.filter(pc.equal(day_of_row, day))
                events = mine.column("event_id")
                candidates = exported.candidates.filter(
                    pc.is_in(exported.candidates.column("event_id"), value_set=events)
                )
                folder = out / f"day={day}"
                folder.mkdir(exist_ok=True)
                write_log(mine, candidates, exported.items, folder / f"part-{number:06d}.parquet")
                rows += mine.num_rows
                parts += 1
                days.add(day)
        # Loaded rows are not needed again: keep the identity map at one chunk.
        session.expunge_all()
    return PartitionedExport(rows, pending, parts, tuple(sorted(days)))
