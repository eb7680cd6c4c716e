"""Texts for a person never break a name: summaries are built from fields one by one (a missing
value reads as missing, not as a placeholder glued to a name), and CLI tables that cannot fit a
narrow terminal without splitting words print one block per row instead."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from loopwatch.cli.layout import Column, needed_width, print_rows
from loopwatch.loops import SoftwareChange, WindowEvidence, diagnose_window
from loopwatch.loops.evidence import describe_software

T0 = datetime(2013, 3, 4, tzinfo=timezone.utc)
BOX = re.compile(r"[│┃┏━┳┓┡╇┩└─┴┘╭╮╰╯┌┐├┤┼]")


def rendered(width: int, columns: list[Column], rows: list[list[str]]) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    print_rows(console, title="incidents", columns=columns, rows=rows)
    return console.export_text()


def words(text: str) -> set[str]:
    return set(BOX.sub(" ", text).split())


def test_software_is_named_field_by_field() -> None:
    batch = SoftwareChange(what="client_version", value="batch-job -", share=0.12, features=["dep_delay"],
                           client="batch-job", client_version=None)
    assert describe_software(batch.to_dict()) == 'client "batch-job", which sends no client version'
    app = SoftwareChange(what="client_version", value="mobile-app 3.0.0", share=0.3, client="mobile-app",
                         client_version="3.0.0")
    assert describe_software(app.to_dict()) == 'client "mobile-app" at version "3.0.0"'
    assert describe_software({"what": "client_version", "client": None, "client_version": "2.1"}) == \
        'a client without an id at version "2.1"'
    assert describe_software({"what": "model_version", "value": "4"}) == "model v4"
    external = SoftwareChange(what="model_version", value="5", share=1.0, label="fraud-2026-02")
    assert describe_software(external.to_dict()) == 'model v5 ("fraud-2026-02")'
    assert describe_software(replace(external, label=None).to_dict()) == "model v5"
    assert describe_software({"what": "schema", "value": ""}) == "an unnamed schema"


def test_a_software_change_summary_holds_no_placeholder() -> None:
    batch = SoftwareChange(what="client_version", value="batch-job -", share=0.12, features=["dep_delay"],
                           client="batch-job", client_version=None)
    evidence = WindowEvidence(start=T0, end=T0 + timedelta(days=1), n_events=900, model_versions=[1],
                              drifted_features={"dep_delay": 0.4}, importance={"dep_delay": 1.0},
                              software_changes=[batch])
    (finding,) = diagnose_window(evidence, tolerance=0.03)
    assert finding.kind == "software_change"
    assert 'from client "batch-job", which sends no client version, first seen' in finding.summary
    assert "batch-job -" not in finding.summary


INCIDENT = ["flights_delays:software_change:20130304T0000", "[red]open[/]", "2013-03-04",
            'dep_delay changed in the 12% of events from client "batch-job", which sends no client version, '
            "first seen in this window, and not in the rest"]
COLUMNS = [Column("incident"), Column("status"), Column("since"), Column("summary", wrap=True)]


def test_words_like_emoji_codes_are_printed_as_they_are() -> None:
    # rich reads ":a:" as an emoji code; a summary's words are text (found by the property below)
    for width in (30, 200):
        assert "a:a:" in words(rendered(width, [Column("incident"), Column("summary", wrap=True)], [["a", "a:a:"]]))


def test_a_narrow_terminal_gets_blocks_with_every_word_whole() -> None:
    for width in (40, 60, 80, 100, 200):
        text = rendered(width, COLUMNS, [INCIDENT])
        assert words(INCIDENT[0] + " open " + INCIDENT[2] + " " + INCIDENT[3]) <= words(text), width
        table = needed_width(COLUMNS, [INCIDENT]) <= width
        assert ("┃ incident" in text) is table, width  # a table only where it fits whole
    # the 80 columns of a pipe: the summary used to be folded into a 7-character column
    assert "client_" not in words(rendered(80, COLUMNS, [[*INCIDENT[:3], "from client_version batch-job"]]))


identifier = st.from_regex(r"[a-z][a-z0-9_\-:.]{0,30}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(identifier, min_size=1, max_size=4), text=st.lists(identifier, min_size=1, max_size=25),
       width=st.integers(30, 160))
def test_no_word_is_ever_split(ids: list[str], text: list[str], width: int) -> None:
    rows = [[name, "open", " ".join(text)] for name in ids]
    columns = [Column("incident"), Column("status"), Column("summary", wrap=True)]
    shown = words(rendered(width, columns, rows))
    for name in [*ids, *text]:
        if len(name) <= width - 12:  # a word longer than the whole line has to fold somewhere
            assert name in shown, (name, width)
