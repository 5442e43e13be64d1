"""The demo's table, closing lines and next commands, from made-up rows (no training)."""

from __future__ import annotations

from labelless.demo import (
    HEADERS,
    HEADLINE_SHOTS,
    MEASURES,
    PRETRAINED,
    RANDOM_INIT,
    RAW_PIXELS,
    closing_lines,
    comparison_table,
    next_commands,
)


def _rows(pretrained: float, pixels: float, random_init: float, pixels_knn: float = 0.9):
    values = ((PRETRAINED, pretrained), (RANDOM_INIT, random_init), (RAW_PIXELS, pixels))
    rows = {name: dict.fromkeys(MEASURES, value) for name, value in values}
    rows[RAW_PIXELS]["knn_top1"] = pixels_knn
    return rows


def test_the_closing_line_states_the_headline_win():
    lines = closing_lines(_rows(0.83, 0.68, 0.51, pixels_knn=0.5), train_size=1437, epochs=100)
    assert lines == [
        f"With {HEADLINE_SHOTS} labels per class, a linear probe on the pretrained encoder scores "
        "0.830 vs 0.680 on raw pixels and 0.510 at random init: pretraining on 1,437 unlabelled "
        "images is what makes a few labels enough."
    ]


def test_a_row_that_raw_pixels_win_is_explained():
    lines = closing_lines(_rows(0.83, 0.68, 0.51, pixels_knn=0.97), train_size=1437, epochs=100)
    assert len(lines) == 2
    assert lines[1].startswith("Raw pixels win with all labels (kNN): 8x8 digits are nearly")


def test_no_win_is_claimed_when_pretraining_loses():
    lines = closing_lines(_rows(0.60, 0.68, 0.51), train_size=1437, epochs=3)
    assert lines[0].endswith("3 epochs of pretraining were not enough here.")
    assert "what makes" not in lines[0]


def test_the_table_has_a_row_per_measure_and_a_column_per_encoder():
    table = comparison_table(_rows(0.83, 0.68, 0.51), test_size=360, k=20)
    assert [column.header for column in table.columns][1:] == list(HEADERS.values())
    assert table.row_count == len(MEASURES)


def test_next_commands_name_the_demo_folder():
    commands = [command for _, command in next_commands("runs/my-demo")]
    assert len(commands) == 3
    assert "--init runs/my-demo --width 0.5" in commands[0]
    assert commands[2].startswith("labelless compare runs/my-demo runs/byol-digits")
