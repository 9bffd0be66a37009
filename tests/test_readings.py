"""Two readings of a page merged paragraph by paragraph (tasks.readings)."""

from __future__ import annotations

from tasks.readings import merge_readings

LEAD = "The lead paragraph says what happened, where it happened and who was there at the time."
ONE = "The first body paragraph gives the details that the reporters could confirm on Monday."
TWO = "A second paragraph, missed by one reading, quotes the mayor at some length on the plan."
THREE = "The last paragraph of the article says what happens next and when the council will vote."
COMMENT = "Posted by a reader: I think this is the worst decision the council has taken in years."


def test_prose_inside_the_shared_stretch_and_the_lead_are_added_in_order() -> None:
    primary = [ONE, THREE]
    secondary = ["Home | News | Sport", LEAD, ONE, TWO, "Share", THREE, COMMENT]
    assert merge_readings(primary, secondary) == [LEAD, ONE, TWO, THREE]


def test_nothing_shared_keeps_the_primary_reading() -> None:
    assert merge_readings([ONE], [COMMENT, TWO]) == [ONE]
    assert merge_readings([], [ONE]) == []


def test_lines_both_readings_hold_are_not_repeated() -> None:
    assert merge_readings([ONE, TWO, THREE], [ONE.upper(), TWO, THREE]) == [ONE, TWO, THREE]
