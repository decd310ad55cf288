"""The one name pattern (netguard/names.py), without a network."""

from __future__ import annotations

import pytest

from netguard.names import InvalidNameError, check_name, is_name


@pytest.mark.parametrize("name", ["c1", "B3-1201", "阳光社区", "door_z1", "a:b", "0x00158d0001",
                                  "x" * 64, "_hidden", "lotus.east"])
def test_good_names(name: str) -> None:
    assert check_name(name, "community") == name


@pytest.mark.parametrize("name", [
    "", "a/b", "#", "+", "a#", "a+b", "c1\n", "c1\r\n", "a\x00", "a\tb", "a b", "-x", ".x",
    "$SYS", "x" * 65, "a\u0085", "\u200bx", "a\ud800",
])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid community"):
        check_name(name, "community")
    assert not is_name(name)


def test_a_trailing_newline_is_refused() -> None:
    # re.match("^...$") accepts "c1\n": the pattern must end in \Z.
    assert not is_name("c1\n")


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidNameError) as info:
        check_name("/" * 5000, "community")
    assert len(str(info.value)) < 400
