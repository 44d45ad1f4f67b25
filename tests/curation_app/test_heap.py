"""curation_app.heap: glibc's allocator told to keep freed blocks; elsewhere nothing happens."""

from __future__ import annotations

import platform

from curation_app.heap import keep_freed_memory


def test_keep_freed_memory_takes_effect_on_glibc_and_is_harmless_to_repeat() -> None:
    expected = platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is expected
    assert keep_freed_memory() is expected
