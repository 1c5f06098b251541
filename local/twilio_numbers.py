"""Twilio's phone numbers as the local REST stand-in keeps them: a fixed inventory for sale, and the account's own.

The inventory is fictional and the same on every run: in the US, 20 numbers in each of a few area
codes (+1 415 555 0100…), in the UK London's drama range (+44 20 7946 01xx). A number bought leaves
the inventory; released, it comes back. Errors carry Twilio's HTTP status and error code.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"


class TwilioApiError(Exception):
    """A request Twilio refuses: answered with `status` and Twilio's error `code`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Place:
    locality: str
    region: str
    postal_code: str
    latitude: str
    longitude: str


# US area codes with numbers for sale (555-01xx is the range set aside for fiction), and the UK's London range.
US_AREAS = {
    "415": Place("San Francisco", "CA", "94105", "37.789", "-122.394"),
    "212": Place("New York", "NY", "10001", "40.750", "-73.997"),
    "312": Place("Chicago", "IL", "60601", "41.886", "-87.622"),
    "555": Place("Springfield", "IL", "62701", "39.800", "-89.650"),
}
LONDON = Place("London", "England", "W1A 1AA", "51.518", "-0.143")
NUMBERS_PER_AREA = 20
# Twilio's Contains: digits and letters (read as keypad digits), `*` one digit, `%` any run of digits,
# a leading `+` anchors at the start and a trailing `$` at the end.
_KEYPAD = {letter: digit for digit, letters in {"2": "abc", "3": "def", "4": "ghi", "5": "jkl", "6": "mno",
                                                  "7": "pqrs", "8": "tuv", "9": "wxyz"}.items() for letter in letters}
_CONTAINS = re.compile(r"\+?[0-9A-Za-z*%]{2,16}\$?")


@dataclass(frozen=True)
class ForSale:
    phone_number: str
    iso_country: str
    area_code: str | None
    place: Place

    @property
    def friendly_name(self) -> str:
        national = self.phone_number.removeprefix("+1").removeprefix("+44")
        if self.iso_country == "US":
            return f"({national[:3]}) {national[3:6]}-{national[6:]}"
        return f"0{national[:2]} {national[2:6]} {national[6:]}"

    def resource(self) -> dict[str, Any]:
        """An AvailablePhoneNumber as Twilio's REST API returns it."""
        return {
            "friendly_name": self.friendly_name, "phone_number": self.phone_number, "lata": None,
            "locality": self.place.locality, "rate_center": self.place.locality.upper(),
            "latitude": self.place.latitude, "longitude": self.place.longitude, "region": self.place.region,
            "postal_code": self.place.postal_code, "iso_country": self.iso_country, "address_requirements": "none",
            "beta": False, "capabilities": {"voice": True, "SMS": True, "MMS": True},
        }


def inventory() -> dict[str, ForSale]:
    """Every number for sale, by E.164."""
    numbers = [ForSale(f"+1{area}55501{n:02d}", "US", area, place)
               for area, place in US_AREAS.items() for n in range(NUMBERS_PER_AREA)]
    numbers += [ForSale(f"+4420794601{n:02d}", "GB", None, LONDON) for n in range(NUMBERS_PER_AREA)]
    return {number.phone_number: number for number in numbers}


# The fields of an IncomingPhoneNumber a client may set, by their form name.
SETTABLE = {
    "FriendlyName": "friendly_name", "VoiceUrl": "voice_url", "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url", "VoiceFallbackMethod": "voice_fallback_method",
    "StatusCallback": "status_callback", "StatusCallbackMethod": "status_callback_method",
    "SmsUrl": "sms_url", "SmsMethod": "sms_method",
}
METHODS = ("GET", "POST")


@dataclass
class IncomingNumber:
    """One of the account's numbers: where Twilio sends its calls."""

    sid: str
    account_sid: str
    phone_number: str
    settings: dict[str, str] = field(default_factory=dict)  # SETTABLE's snake_case names
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))

    def update(self, form: dict[str, str]) -> None:
        changes = {SETTABLE[name]: value for name, value in form.items() if name in SETTABLE}
        for name, value in changes.items():
            if name.endswith("method") and value.upper() not in METHODS:
                raise TwilioApiError(400, 21208 if "status" in name else 21204,
                                     f"{name} must be GET or POST, not {value!r}")
        self.settings.update({name: value.upper() if name.endswith("method") else value
                              for name, value in changes.items()})
        self.updated = datetime.now(UTC)

    def resource(self) -> dict[str, Any]:
        """The IncomingPhoneNumber as Twilio's REST API returns it (the fields a client reads)."""
        setting = self.settings.get
        return {
            "sid": self.sid, "account_sid": self.account_sid, "api_version": API_VERSION,
            "phone_number": self.phone_number, "friendly_name": setting("friendly_name") or self.phone_number,
            "voice_url": setting("voice_url", ""), "voice_method": setting("voice_method", "POST"),
            "voice_fallback_url": setting("voice_fallback_url", ""),
            "voice_fallback_method": setting("voice_fallback_method", "POST"),
            "status_callback": setting("status_callback", ""),
            "status_callback_method": setting("status_callback_method", "POST"),
            "sms_url": setting("sms_url", ""), "sms_method": setting("sms_method", "POST"),
            "voice_caller_id_lookup": False, "voice_application_sid": None, "trunk_sid": None,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "address_requirements": "none", "beta": False, "origin": "twilio", "status": "in-use",
            "date_created": format_datetime(self.created), "date_updated": format_datetime(self.updated),
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{self.sid}.json",
        }


class PhoneNumbers:
    """The numbers for sale and those the account owns; `owned` are the account's from the start."""

    def __init__(self, account_sid: str, owned: Iterable[str] = ()) -> None:
        self._account_sid = account_sid
        self._for_sale = inventory()
        self._owned: dict[str, IncomingNumber] = {}
        for phone_number in owned:
            self._own(phone_number)

    def search(self, country: str, area_code: str | None, contains: str | None, limit: int) -> list[ForSale]:
        """AvailablePhoneNumbers/{country}/Local: the inventory's numbers left in a country, filtered."""
        found = [number for number in self._for_sale.values() if number.iso_country == country.upper()]
        if not found and country.upper() not in ("US", "GB"):
            raise TwilioApiError(404, 20404, f"The requested resource AvailablePhoneNumbers/{country} was not found")
        if area_code:
            _check_area_code(area_code)
            found = [number for number in found if number.area_code == area_code]
        if contains:
            pattern = contains_pattern(contains)
            found = [number for number in found if pattern.search(number.phone_number.lstrip("+"))]
        return sorted(found, key=lambda number: number.phone_number)[:limit]

    def buy(self, form: dict[str, str]) -> IncomingNumber:
        """IncomingPhoneNumbers create: PhoneNumber, or the first number for sale in AreaCode."""
        phone_number, area_code = form.get("PhoneNumber"), form.get("AreaCode")
        if phone_number:
            if phone_number not in self._for_sale:
                raise TwilioApiError(400, 21422, "PhoneNumber is not available")
        elif area_code:
            _check_area_code(area_code)
            left = sorted(n.phone_number for n in self._for_sale.values() if n.area_code == area_code)
            if not left:
                raise TwilioApiError(400, 21452, "No phone numbers found in area code")
            phone_number = left[0]
        else:
            raise TwilioApiError(400, 21421, "A 'PhoneNumber' or an 'AreaCode' is required")
        number = IncomingNumber(_new_sid(), self._account_sid, phone_number)
        number.update(form)
        self._for_sale.pop(phone_number)
        self._owned[number.sid] = number
        return number

    def owned(self, phone_number: str | None = None, friendly_name: str | None = None) -> list[IncomingNumber]:
        """The account's numbers, oldest first; PhoneNumber matches partial numbers, `*` standing for any digit."""
        found = sorted(self._owned.values(), key=lambda number: (number.created, number.sid))
        if phone_number:
            digits = re.escape(re.sub(r"[^0-9*]", "", phone_number)).replace(r"\*", r"\d")
            found = [number for number in found if re.search(digits, number.phone_number)]
        if friendly_name:
            found = [number for number in found if number.resource()["friendly_name"] == friendly_name]
        return found

    def get(self, sid: str) -> IncomingNumber | None:
        return self._owned.get(sid)

    def owns(self, phone_number: str) -> bool:
        return any(number.phone_number == phone_number for number in self._owned.values())

    def release(self, sid: str) -> IncomingNumber:
        number = self._owned.pop(sid, None)
        if number is None:
            raise TwilioApiError(404, 20404, f"The requested resource IncomingPhoneNumbers/{sid} was not found")
        restocked = inventory().get(number.phone_number)
        if restocked is not None:
            self._for_sale[number.phone_number] = restocked
        return number

    def _own(self, phone_number: str) -> IncomingNumber:
        number = IncomingNumber(_new_sid(), self._account_sid, phone_number)
        self._for_sale.pop(phone_number, None)
        self._owned[number.sid] = number
        return number


def contains_pattern(contains: str) -> re.Pattern[str]:
    """Twilio's Contains as a regular expression over the number's digits (no "+")."""
    if not _CONTAINS.fullmatch(contains):
        raise TwilioApiError(400, 20001, "Contains must be 2 to 16 digits, letters or the wildcards * and %")
    start, end = contains.startswith("+"), contains.endswith("$")
    body = contains.strip("+$")
    regex = "".join(r"\d" if char == "*" else r"\d*" if char == "%" else _KEYPAD.get(char.lower(), char)
                    for char in body)
    return re.compile(("^" if start else "") + regex + ("$" if end else ""))


def _check_area_code(area_code: str) -> None:
    if not re.fullmatch(r"[2-9][0-9]{2}", area_code):
        raise TwilioApiError(400, 21451, "Invalid area code")


def _new_sid() -> str:
    return "PN" + secrets.token_hex(16)
