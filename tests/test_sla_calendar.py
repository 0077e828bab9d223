"""The Dutch business calendar and the deadlines of the norms, on real dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from kcc.settings import REPO_CONFIG
from sla.norms import NormBook, NormConfigError, Term

AMS = ZoneInfo("Europe/Amsterdam")


@pytest.fixture(scope="module")
def book() -> NormBook:
    return NormBook.load(REPO_CONFIG)


def local(y: int, m: int, d: int, hh: int = 10, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=AMS).astimezone(UTC)


def end_of(y: int, m: int, d: int) -> datetime:
    """The end of a local day: the deadline moment of a day-based term ending that day."""
    return datetime.combine(date(y, m, d) + timedelta(days=1), time(0), tzinfo=AMS).astimezone(UTC)


def test_koningsdag_on_a_sunday_is_kept_on_saturday_26_april_2025(book: NormBook) -> None:
    cal = book.calendar
    assert cal.is_termijnenwet_holiday(date(2025, 4, 26))
    assert not cal.is_termijnenwet_holiday(date(2025, 4, 27))
    assert cal.is_termijnenwet_holiday(date(2026, 4, 27))  # a Monday in 2026
    # Received Saturday 15 March 2025: six weeks end on Saturday 26 April (Koningsdag), and
    # the term runs on past the Sunday to Monday 28 April.
    answer = book.by_id("written-answer")
    assert answer is not None
    assert answer.deadline(cal, local(2025, 3, 15)) == end_of(2025, 4, 28)


def test_5_may_counts_every_year_for_the_termijnenwet_not_as_a_working_day_holiday(
    book: NormBook,
) -> None:
    cal = book.calendar
    # 2026 is no lustrum year: the public category has no 5 May, the Atw counts it anyway.
    assert not cal.is_public_holiday(date(2026, 5, 5))
    assert cal.is_termijnenwet_holiday(date(2026, 5, 5))
    assert cal.is_working_day(date(2026, 5, 5))
    answer = book.by_id("written-answer")
    assert answer is not None
    # Tuesday 24 March 2026 + 6 weeks = Tuesday 5 May 2026 -> Wednesday 6 May.
    assert answer.deadline(cal, local(2026, 3, 24)) == end_of(2026, 5, 6)


def test_easter_good_friday_to_easter_monday(book: NormBook) -> None:
    cal = book.calendar
    answer = book.by_id("written-answer")
    assert answer is not None
    # Friday 20 February 2026 + 6 weeks = Good Friday 3 April; Saturday, Sunday and Easter
    # Monday follow, so the term ends on Tuesday 7 April.
    assert answer.deadline(cal, local(2026, 2, 20)) == end_of(2026, 4, 7)
    assert cal.add_working_days(date(2026, 4, 2), 1) == date(2026, 4, 7)


def test_christmas_into_the_new_year(book: NormBook) -> None:
    cal = book.calendar
    ack = book.by_id("written-ack")
    assert ack is not None
    # Sunday 27 December 2026 + 5 days = New Year's Day (Friday) -> Monday 4 January 2027.
    assert ack.deadline(cal, local(2026, 12, 27)) == end_of(2027, 1, 4)
    # Six working days from Wednesday 23 December 2026: 24, 28, 29, 30, 31 Dec, 4 Jan.
    assert cal.add_working_days(date(2026, 12, 23), 6) == date(2027, 1, 4)
    # Received on Christmas Eve: Christmas Day is no working day.
    assert Term(1, "working_days").end(cal, local(2026, 12, 24)) == end_of(2026, 12, 28)


def test_a_day_equalised_by_royal_decree() -> None:
    raw = {
        "termijnenwet": {
            "every_year": ["05-05"],
            "decree_days": [{"date": "2026-12-24", "decree": "test"}],
        },
        "norm": [
            {
                "id": "answer",
                "measure": "answer",
                "channels": ["email"],
                "term": {"days": 3},
                "target": 95,
                "termijnenwet": True,
            }
        ],
    }
    book = NormBook.from_dict(raw)
    norm = book.by_id("answer")
    assert norm is not None and book.calendar.is_termijnenwet_holiday(date(2026, 12, 24))
    # Monday 21 December + 3 days = Thursday 24 (decree day) -> 25, 26 (Christmas, Saturday),
    # 27 (Sunday) -> Monday 28 December.
    assert norm.deadline(book.calendar, local(2026, 12, 21)) == end_of(2026, 12, 28)
    without = NormBook.from_dict({**raw, "termijnenwet": {"every_year": ["05-05"]}})
    plain = without.by_id("answer")
    assert plain is not None
    assert plain.deadline(without.calendar, local(2026, 12, 21)) == end_of(2026, 12, 24)


def test_working_days_and_calendar_days_are_configurable() -> None:
    book = NormBook.from_dict(
        {
            "norm": [
                {
                    "id": "two-working-days",
                    "measure": "answer",
                    "channels": ["email"],
                    "term": {"working_days": 2},
                    "target": 90,
                }
            ]
        }
    )
    norm = book.by_id("two-working-days")
    assert norm is not None
    # Friday 27 November 2026: Monday 30 November and Tuesday 1 December.
    assert norm.deadline(book.calendar, local(2026, 11, 27, 15)) == end_of(2026, 12, 1)
    with pytest.raises(NormConfigError):
        NormBook.from_dict({"norm": [{"id": "x", "measure": "answer", "term": {"fortnights": 1}}]})


def test_opening_hours_only_count_for_chat(book: NormBook) -> None:
    cal = book.calendar
    chat = book.by_id("chat-first-response")
    assert chat is not None
    # Monday 23 November 2026 12:59:50: the KCC opens at 13:00, so 30 s end at 13:00:30.
    assert chat.deadline(cal, local(2026, 11, 23, 12, 59, 50)) == local(2026, 11, 23, 13, 0, 30)
    # Friday 15:59:45: 15 s on Friday, the rest on Monday at 13:00.
    assert chat.deadline(cal, local(2026, 11, 27, 15, 59, 45)) == local(2026, 11, 30, 13, 0, 15)
    # Christmas Day (Friday) is closed: Thursday 24 December 16:00 -> Monday 28, 13:00:30.
    assert chat.deadline(cal, local(2026, 12, 24, 16, 0)) == local(2026, 12, 28, 13, 0, 30)
    assert cal.open_seconds(local(2026, 11, 23, 12), local(2026, 11, 23, 13, 0, 10)) == 10
    phone = book.by_id("phone-answered")
    assert phone is not None
    assert phone.deadline(cal, local(2026, 11, 23, 20)) == local(2026, 11, 23, 20, 0, 30)


def test_deadlines_on_receipt_per_channel_and_kind(book: NormBook) -> None:
    received = local(2026, 11, 23, 10)
    email = book.deadlines("email", "vraag", received, received)
    # Saturday 28 November runs on to Monday 30 November; six weeks end Monday 4 January.
    assert email.columns["ack_due"] == end_of(2026, 11, 30)
    assert email.columns["answer_due"] == end_of(2027, 1, 4)
    assert email.columns["sla_norm"] == "written-answer"
    assert [kind for kind, _, _ in email.timers] == [
        "acknowledgement",
        "ack_breach",
        "warning",
        "answer_breach",
    ]
    klacht = book.deadlines("email", "klacht", received, received)
    assert klacht.columns["sla_norm"] == "klacht"
    phone = book.deadlines("phone", "vraag", received, received)
    assert phone.columns == {} and phone.timers == []
    # A letter received three weeks before it was scanned: deadlines count from receipt.
    post = book.deadlines("post", "bezwaar", local(2026, 11, 2), received)
    assert post.columns["sla_norm"] == "bezwaar"
    assert post.columns["answer_due"] == end_of(2026, 12, 14)


def test_legal_maximum_of_a_verdaging(book: NormBook) -> None:
    klacht = book.by_id("klacht")
    bezwaar = book.by_id("bezwaar")
    assert klacht is not None and bezwaar is not None
    norm_due = end_of(2027, 1, 4)
    # Awb 9:11: at most 4 weeks; Awb 7:10: 6 weeks (both to the end of that day).
    assert klacht.latest_extension(book.calendar, norm_due) == end_of(2027, 2, 1)
    assert bezwaar.latest_extension(book.calendar, norm_due) == end_of(2027, 2, 15)
    answer = book.by_id("written-answer")
    assert answer is not None and answer.latest_extension(book.calendar, norm_due) is None
