"""Mode strings: the grammar, defaults and errors."""

from __future__ import annotations

import pytest

from infant_tissue.inference import FAST_ALIAS, parse_mode


def test_faithful_is_the_default_reference_setting():
    mode = parse_mode("faithful")
    assert mode.is_faithful
    assert mode.patch is None and mode.stride is None
    assert (mode.weighting, mode.window_mask, mode.members) == ("constant", "normalised", None)


def test_stride_and_members_combine():
    mode = parse_mode("stride16+members:3")
    assert mode.stride == (16, 16, 16) and mode.members == 3 and not mode.is_faithful
    assert mode.window_mask == "normalised" and mode.weighting == "constant"


def test_tile_defaults_and_overrides():
    mode = parse_mode("tile96")
    assert mode.patch == (96,) * 3 and mode.stride == (48,) * 3
    assert (mode.weighting, mode.window_mask, mode.crop) == ("gaussian", "brain", True)
    assert parse_mode("tile64:40+constant").stride == (40,) * 3
    assert parse_mode("tile64:40+constant").weighting == "constant"


def test_fast_expands_to_the_documented_alias():
    assert parse_mode("fast").name == FAST_ALIAS == "stride32+mask:brain"
    assert parse_mode("fast").window_mask == "brain"
    assert parse_mode("whole+members:2").whole


def test_mask_token_sets_the_window_rule():
    assert parse_mode("stride16+mask:all").window_mask == "all"
    assert parse_mode("tile64+mask:normalised").window_mask == "normalised"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", "unknown mode token"),
        ("tile60", "multiple of 8"),
        ("tile64:80", "stride"),
        ("members:0", "K >= 1"),
        ("stride16+tile64", "same option"),
        ("", "non-empty"),
        ("mask:skull", "mask must be one of"),
        ("mask:brain+mask:all", "same option"),
    ],
)
def test_bad_modes(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_mode(spec)
