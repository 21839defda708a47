"""Country dialling prefixes, from the ``phonenumbers`` metadata (real data, not a hand list).

A calling code shared by several countries (NANP's ``1``, ``7``, ``44``, ...)
is split by the national digits that pick a country: ``1204`` is Canada,
``1205`` the United States, ``77`` Kazakhstan.  The code alone names its
main country.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import phonenumbers
from phonenumbers import geocoder
from phonenumbers.phonemetadata import PhoneMetadata

#: Subscriber digits tried after a NANP area code to see which country owns it.
_PROBES = ("2345678", "5550123", "4567890", "7654321")
_DIGIT_ALTERNATION = re.compile(r"^[0-9]+(\|[0-9]+)*$")


@dataclass(frozen=True)
class CountryPrefix:
    prefix: str
    iso: str
    name: str
    calling_code: int


@cache
def country_name(iso: str) -> str:
    example = phonenumbers.example_number(iso)
    if example is None:
        return iso
    return geocoder.country_name_for_number(example, "en") or iso


def nanp_region(prefix: str) -> str | None:
    """The country of a NANP prefix (``1204`` -> CA), by asking phonenumbers about sample numbers."""
    for probe in _PROBES:
        number = phonenumbers.parse("+" + prefix + probe, None)
        region = phonenumbers.region_code_for_number(number)
        if region:
            return str(region)
    return None


def _shared_code_prefixes(code: int, main: str, regions: list[str]) -> list[CountryPrefix]:
    """Prefixes that pick a country other than ``main`` inside calling code ``code``."""
    found: list[CountryPrefix] = []
    for region in regions:
        if region == main:
            continue
        metadata = PhoneMetadata.metadata_for_region(region)
        leading: str | None = metadata.leading_digits if metadata else None
        if leading and _DIGIT_ALTERNATION.match(leading):
            found.extend(
                CountryPrefix(f"{code}{digits}", region, country_name(region), code)
                for digits in leading.split("|")
            )
    if code == 1:  # NANP members without leading digits (Canada): test every area code
        listed = {p.prefix for p in found}
        for area in range(200, 1000):
            prefix = f"1{area}"
            owner = nanp_region(prefix)
            if owner and owner != main and prefix not in listed:
                found.append(CountryPrefix(prefix, owner, country_name(owner), code))
    return found


def country_prefixes() -> list[CountryPrefix]:
    """Every calling code with its main country, plus the prefixes of shared codes."""
    result: list[CountryPrefix] = []
    for code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        geographic = [r for r in regions if r != "001"]
        if not geographic:
            continue  # non-geographic services (satellite, UIFN): no country
        main = str(phonenumbers.region_code_for_country_code(code))
        result.append(CountryPrefix(str(code), main, country_name(main), code))
        if len(geographic) > 1:
            result.extend(_shared_code_prefixes(code, main, geographic))
    return result
