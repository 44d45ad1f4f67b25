"""bandit.ope.distinct_text: a True answer is always right; repeats are always found."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from bandit.ope.distinct_text import CHUNK, surely_distinct, text_keys


def _random_ids(rng: np.random.Generator, n: int) -> list[str]:
    alphabet = list("abcxyz019-_é") + ["\x00"]
    return ["".join(rng.choice(alphabet, size=rng.integers(0, 20))) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_answer_agrees_with_a_set_on_random_text(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(20):
        values = _random_ids(rng, int(rng.integers(2, 60)))
        truth = len(set(values)) == len(values)
        for kind in (pa.string(), pa.large_string()):
            # (A False for distinct text would be a 64-bit key collision: never at this size.)
            assert surely_distinct(pa.array(values, type=kind)) is truth


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "a\x00"], True),  # the same bytes but for a trailing NUL: lengths differ
        (["", "\x00"], True),
        (["", ""], False),
        (["abcdefgh", "abcdefgi"], True),  # differ in the last byte of a word
        (["abcdefghijklmnopq", "abcdefghijklmnopr"], True),  # in a third word
        (["same-long-identifier-0001", "x", "same-long-identifier-0001"], False),
        (["one"], True),
        ([], True),
    ],
)
def test_table_of_edge_cases(values: list[str], expected: bool) -> None:
    assert surely_distinct(pa.array(values, type=pa.string())) is expected


def test_equal_strings_get_equal_keys_whatever_their_place_in_the_buffers() -> None:
    values = pa.array(["zz", "event-17", "q", "event-17", "event-17x"])
    sliced = values.slice(1)
    keys, sliced_keys = text_keys(values), text_keys(sliced)
    assert keys[1] == keys[3] == sliced_keys[0] == sliced_keys[2]
    assert len({int(k) for k in keys}) == 4
    assert surely_distinct(values.slice(3)) and not surely_distinct(sliced)


def test_many_rows_over_several_chunks() -> None:
    values = [f"e{i}" for i in range(CHUNK * 2 + 5)]
    assert surely_distinct(pa.array(values))
    assert not surely_distinct(pa.array([*values, "e7"]))


def test_nulls_and_other_types_are_not_claimed_distinct() -> None:
    assert not surely_distinct(pa.array(["a", None]))
    assert not surely_distinct(pa.array([1, 2]))
