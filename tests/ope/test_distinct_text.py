"""bandit.ope.distinct_text: a True answer is always right; repeats are always found."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from bandit.ope.distinct_text import CHUNK, equal_rows, surely_distinct, text_keys


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
    assert keys is not None and sliced_keys is not None
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


@pytest.mark.parametrize("seed", range(4))
def test_equal_rows_agrees_with_pyarrow_on_chunked_text_with_nulls(seed: int) -> None:
    rng = np.random.default_rng([seed, 9])
    right_values = _random_ids(rng, 40)
    left_values: list[str | None] = [
        None if rng.random() < 0.1 else (v if rng.random() < 0.6 else v + "x") for v in right_values
    ]
    padding = _random_ids(rng, 25)
    # left: the compared strings spread over chunks, with other rows in between.
    spread: list[str | None] = []
    rows = []
    for value, filler in zip(left_values, padding + padding, strict=False):
        spread.append(filler)
        rows.append(len(spread))
        spread.append(value)
    cut = len(spread) // 3
    left = pa.chunked_array([pa.array(spread[:cut]), pa.array(spread[cut:])], type=pa.string())
    right = pa.array(right_values, type=pa.string())
    expected = [v is not None and v == w for v, w in zip(left_values, right_values, strict=True)]
    got = equal_rows(left, np.array(rows), right)
    assert got is not None and got.tolist() == expected


def test_words_near_the_end_of_a_tight_buffer_are_read_exactly() -> None:
    # A buffer exactly as long as its strings: the last reads start before the string.
    values = pa.array(["abcdefghij", "k", "lmnopqrstuvwx", "yz"])
    assert values.buffers()[2].size >= 26
    tail = values.slice(1)
    other = pa.array(["k", "lmnopqrstuvwx", "yz"])
    got = equal_rows(tail, np.arange(3), other)
    assert got is not None and got.all()
    changed = equal_rows(tail, np.arange(3), pa.array(["k", "lmnopqrstuvwX", "yz"]))
    assert changed is not None and changed.tolist() == [True, False, True]
    keys, tail_keys = text_keys(pa.array(["yz", "lmnopqrstuvwx"])), text_keys(tail)
    assert keys is not None and tail_keys is not None
    assert (keys == tail_keys[[2, 1]]).all()
