"""XDR files as real switches write them, for the import-template tests.

Layouts follow the switches' documented defaults: Asterisk's cdr_csv
(Master.csv: strings quoted, numbers bare, no header; uniqueid and userfield
optional at the end, then peeraccount/linkedid/sequence), cdr_custom's sample
mapping, FreeSWITCH mod_cdr_csv's default template (every field quoted), and
Cisco CUCM flat files (a quoted header row, a row of types, epoch seconds).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Call:
    uniqueid: str
    account: str
    src: str
    dst: str
    start: datetime
    answered: bool
    billsec: int
    trunk: str = "gw1"

    @property
    def answer(self) -> datetime | None:
        return self.start.replace(second=5) if self.answered else None

    @property
    def disposition(self) -> str:
        return "ANSWERED" if self.answered else "NO ANSWER"


CALLS = (
    Call("1729500000.101", "acc1", "1001", "4420794600", datetime(2026, 10, 20, 10, 0, tzinfo=UTC), True, 61),
    Call("1729500000.102", "acc2", "1002", "4930123456", datetime(2026, 10, 20, 11, 0, tzinfo=UTC), True, 45),
    Call("1729500000.103", "acc1", "1001", "4420794601", datetime(2026, 10, 20, 12, 0, tzinfo=UTC), False, 0),
)


def _local(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return moment.strftime(fmt) if moment else ""


def _quoted(value: object) -> str:
    return '"' + str(value).replace('"', '""') + '"'


def asterisk_csv(path: Path, calls: Sequence[Call] = CALLS, width: int = 18) -> Path:
    """cdr_csv: 16 base fields, then uniqueid and userfield, then peeraccount, linkedid, sequence."""
    lines = []
    for number, call in enumerate(calls):
        fields = [
            _quoted(call.account),
            _quoted(call.src),
            _quoted(call.dst),
            _quoted("from-internal"),
            _quoted(f'"Desk {call.src}" <{call.src}>'),
            _quoted(f"SIP/{call.src}-0000{number:04x}"),
            _quoted(f"SIP/{call.trunk}-0000{number + 16:04x}"),
            _quoted("Dial"),
            _quoted(f"SIP/{call.trunk}/{call.dst},60"),
            _quoted(_local(call.start)),
            _quoted(_local(call.answer)),
            _quoted(_local(call.start.replace(minute=2))),
            str(call.billsec + 5),
            str(call.billsec),
            _quoted(call.disposition),
            _quoted("DOCUMENTATION"),
            _quoted(call.uniqueid),
            _quoted(""),
            _quoted(""),
            _quoted(call.uniqueid),
            str(number),
        ]
        lines.append(",".join(fields[:width]))
    path.write_text("\n".join(lines) + "\n")
    return path


def asterisk_resaved(path: Path, calls: Sequence[Call] = CALLS) -> Path:
    """A Master.csv after a spreadsheet re-saved it: quotes gone, dates as 2026/10/20 10:00."""
    lines = []
    for number, call in enumerate(calls):
        lines.append(
            ",".join(
                [
                    call.account,
                    call.src,
                    call.dst,
                    "from-internal",
                    f"Desk {call.src} <{call.src}>",
                    f"SIP/{call.src}-0000{number:04x}",
                    f"SIP/{call.trunk}-0000{number + 16:04x}",
                    "Dial",
                    f"SIP/{call.trunk}/{call.dst}",
                    f"{call.start.year}/{call.start.month}/{call.start.day} {call.start:%H:%M}",
                    f"{call.start.year}/{call.start.month}/{call.start.day} {call.start:%H:%M}"
                    if call.answered
                    else "",
                    f"{call.start.year}/{call.start.month}/{call.start.day} {call.start:%H}:02",
                    str(call.billsec + 5),
                    str(call.billsec),
                    call.disposition,
                    "DOCUMENTATION",
                    call.uniqueid,
                    "",
                ]
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def asterisk_custom(path: Path, calls: Sequence[Call] = CALLS) -> Path:
    """cdr_custom with the sample mapping: clid first, accountcode after amaflags, then uniqueid."""
    lines = []
    for number, call in enumerate(calls):
        values = [
            f'"Desk {call.src}" <{call.src}>',
            call.src,
            call.dst,
            "from-internal",
            f"SIP/{call.src}-0000{number:04x}",
            f"SIP/{call.trunk}-0000{number + 16:04x}",
            "Dial",
            f"SIP/{call.trunk}/{call.dst},60",
            _local(call.start),
            _local(call.answer),
            _local(call.start.replace(minute=2)),
            str(call.billsec + 5),
            str(call.billsec),
            call.disposition,
            "DOCUMENTATION",
            call.account,
            call.uniqueid,
            "",
        ]
        lines.append(",".join(_quoted(v) for v in values) + f",{number}")
    path.write_text("\n".join(lines) + "\n")
    return path


def freeswitch_csv(path: Path, calls: Sequence[Call] = CALLS, zone_offset_hours: int = 0) -> Path:
    """mod_cdr_csv's default template; stamps in the switch's local time (UTC + ``zone_offset_hours``)."""
    from datetime import timedelta

    shift = timedelta(hours=zone_offset_hours)
    lines = []
    for call in calls:
        values = [
            f"Desk {call.src}",
            call.src,
            call.dst,
            "default",
            _local(call.start + shift),
            _local(call.answer + shift if call.answer else None),
            _local(call.start.replace(minute=2) + shift),
            str(call.billsec + 5),
            str(call.billsec),
            "NORMAL_CLEARING" if call.answered else "NO_ANSWER",
            f"{call.uniqueid}-a",
            f"{call.uniqueid}-b" if call.answered else "",
            call.account,
            "PCMA",
            "PCMA",
        ]
        lines.append(",".join(_quoted(v) for v in values))
    path.write_text("\n".join(lines) + "\n")
    return path


#: The leading columns of a CUCM CDR flat file, as its header names them.
CUCM_COLUMNS = (
    "cdrRecordType", "globalCallID_callManagerId", "globalCallID_callId", "origLegCallIdentifier",
    "dateTimeOrigination", "origNodeId", "origSpan", "origIpAddr", "callingPartyNumber",
    "callingPartyUnicodeLoginUserID", "origCause_location", "origCause_value", "destLegIdentifier",
    "destNodeId", "destSpan", "destIpAddr", "originalCalledPartyNumber", "finalCalledPartyNumber",
    "dateTimeConnect", "dateTimeDisconnect", "lastRedirectDn", "pkid", "duration", "origDeviceName",
    "destDeviceName",
)  # fmt: skip
_CUCM_TYPES = {"callingPartyNumber", "callingPartyUnicodeLoginUserID", "originalCalledPartyNumber",
               "finalCalledPartyNumber", "lastRedirectDn", "pkid", "origDeviceName", "destDeviceName"}  # fmt: skip


def cucm(path: Path, calls: Sequence[Call] = CALLS) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(CUCM_COLUMNS)
        handle.write(",".join("VARCHAR(50)" if c in _CUCM_TYPES else "INTEGER" for c in CUCM_COLUMNS) + "\n")
        for number, call in enumerate(calls):
            start = int(call.start.timestamp())
            row = {
                "cdrRecordType": 1,
                "globalCallID_callManagerId": 1,
                "globalCallID_callId": 5000 + number,
                "origLegCallIdentifier": 16777000 + number,
                "dateTimeOrigination": start,
                "origNodeId": 1,
                "origSpan": 0,
                "origIpAddr": -1979711488,
                "callingPartyNumber": call.src,
                "callingPartyUnicodeLoginUserID": "",
                "origCause_location": 0,
                "origCause_value": 16,
                "destLegIdentifier": 16777100 + number,
                "destNodeId": 1,
                "destSpan": 0,
                "destIpAddr": 0,
                "originalCalledPartyNumber": call.dst,
                "finalCalledPartyNumber": call.dst,
                "dateTimeConnect": start + 5 if call.answered else 0,
                "dateTimeDisconnect": start + 5 + call.billsec,
                "lastRedirectDn": "",
                "pkid": f"5d1e{number:04d}-0000-4000-8000-{call.uniqueid.replace('.', '')[-12:]}",
                "duration": call.billsec,
                "origDeviceName": call.account,
                "destDeviceName": call.trunk,
            }
            writer.writerow([row[c] for c in CUCM_COLUMNS])
    return path
