"""Instructions: templates render with the business's local time and survive unknown variables."""

from __future__ import annotations

from datetime import UTC, datetime

from voiceline.instructions import call_variables, render

WINTER_EVENING_UTC = datetime(2025, 1, 15, 23, 30, tzinfo=UTC)


def test_date_and_time_are_local_to_the_business() -> None:
    variables = call_variables("+15551230001", "Smile Dental", "America/Los_Angeles", WINTER_EVENING_UTC)
    assert (variables["local_date"], variables["local_time"], variables["timezone"]) == (
        "Wednesday 15 January 2025", "15:30", "America/Los_Angeles")


def test_local_time_crosses_midnight_and_follows_summer_time() -> None:
    tokyo = call_variables("+15551230001", "Sushi Ko", "Asia/Tokyo", WINTER_EVENING_UTC)
    assert (tokyo["local_date"], tokyo["local_time"]) == ("Thursday 16 January 2025", "08:30")
    london_summer = call_variables("+15551230001", "Plumbers", "Europe/London", datetime(2025, 7, 1, 12, tzinfo=UTC))
    assert london_summer["local_time"] == "13:00"


def test_an_unknown_timezone_falls_back_to_utc() -> None:
    variables = call_variables("+15551230001", "Smile Dental", "Mars/Olympus_Mons", WINTER_EVENING_UTC)
    assert (variables["timezone"], variables["local_time"]) == ("UTC", "23:30")


def test_extra_variables_override_the_defaults() -> None:
    variables = call_variables("+15551230001", "Smile Dental", "UTC", WINTER_EVENING_UTC,
                               extra={"customer_name": "Ada", "open_hours": "9-5"})
    assert (variables["customer_name"], variables["open_hours"]) == ("Ada", "9-5")


def test_render_fills_known_variables_and_keeps_unknown_ones() -> None:
    variables = call_variables("+15551230001", "Smile Dental", "America/New_York", WINTER_EVENING_UTC)
    template = "You answer for {business_name}. It is {local_time} on {local_date}. Offer {special_offer}."
    assert render(template, variables) == (
        "You answer for Smile Dental. It is 18:30 on Wednesday 15 January 2025. Offer {special_offer}.")
