"""What a business sells and where: its services with prices, and the area it covers."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from voiceline import tenant_data, words
from voiceline.tool_contract import ToolError

SERVICE = "service#"
POSTCODE = "area#postcode#"
CITY = "area#city#"


@dataclass(frozen=True)
class Service:
    """One service; a fixed `price`, or a `price_from`–`price_to` range when the job decides."""

    id: str
    name: str
    currency: str = "USD"
    price: float | None = None
    price_from: float | None = None
    price_to: float | None = None
    notes: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def labels(self) -> list[str]:
        return [self.id.replace("-", " "), self.name, *self.aliases]


def put_service(tenant_id: str, service: Service) -> None:
    tenant_data.put(tenant_id, SERVICE + service.id, {**asdict(service), "aliases": list(service.aliases)})


def services(tenant_id: str) -> list[Service]:
    return [Service(**{**data, "aliases": tuple(data.get("aliases", ()))})
            for data in tenant_data.of_kind(tenant_id, SERVICE).values()]


def find_service(tenant_id: str, asked: str) -> Service:
    """The service the caller means, matched on stemmed words so 'boiler servicing' finds 'Boiler service'."""
    offered = services(tenant_id)
    wanted = set(words.terms(asked))
    scores: dict[str, float] = {}
    for service in offered:
        for label in service.labels():
            named = set(words.terms(label))
            if named and wanted:
                scores[service.id] = max(scores.get(service.id, 0.0), len(named & wanted) / len(named | wanted))
    best = max(scores.values(), default=0.0)
    if best == 0.0:
        names = ", ".join(sorted(service.name for service in offered)) or "none listed"
        raise ToolError("unknown_service", f"We don't offer {asked!r}. Services offered: {names}.")
    matches = [service for service in offered if scores.get(service.id) == best]
    if len(matches) > 1:
        raise ToolError("ambiguous_service",
                        f"{asked!r} could mean {' or '.join(s.name for s in matches)}. Ask the caller which one.")
    return matches[0]


def pricing(tenant_id: str, asked: str) -> dict[str, Any]:
    service = find_service(tenant_id, asked)
    return {"service": service.name, "currency": service.currency, "price": service.price,
            "price_from": service.price_from, "price_to": service.price_to, "notes": service.notes}


def normal_postcode(postcode: str) -> str:
    """Upper case without spaces; a US ZIP+4 counts as its ZIP."""
    compact = re.sub(r"\s+", "", postcode).upper()
    return compact[:5] if re.fullmatch(r"\d{5}-\d{4}", compact) else compact


def normal_city(city: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", city.lower()))


def put_service_area(tenant_id: str, postcodes: dict[str, str], cities: list[str]) -> None:
    """Covered postcodes (each with the place it names) and covered cities or towns."""
    for postcode, place in postcodes.items():
        tenant_data.put(tenant_id, POSTCODE + normal_postcode(postcode), {"postcode": postcode, "place": place})
    for city in cities:
        tenant_data.put(tenant_id, CITY + normal_city(city), {"city": city})


def service_area(tenant_id: str, postcode: str | None, city: str | None) -> dict[str, Any]:
    """Covered when the postcode or the city is; the postcode's match is reported first.

    "Not covered" is an answer, not a failure: the model tells the caller and names the area covered.
    """
    keys = ([POSTCODE + normal_postcode(postcode)] if postcode else []) + ([CITY + normal_city(city)] if city else [])
    found = tenant_data.get_many(tenant_id, keys)
    for key in keys:
        if key in found:
            area = found[key]
            return {"served": True, "area": area.get("place") or area.get("city"),
                    "postcode": area.get("postcode")}
    covered = sorted(data["city"] for data in tenant_data.of_kind(tenant_id, CITY).values())
    asked = " / ".join(filter(None, (postcode, city)))
    return {"served": False, "asked": asked, "covered_cities": covered,
            "message": f"{asked} is outside the area we cover."}
