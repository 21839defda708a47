"""Re-processing: re-mediate and re-rate XDRs after the configuration was fixed.

``--failed`` takes the XDRs that failed on either side (a new account, rate or
vendor connection now exists); ``--all`` takes rated ones too, for example
after ``account set-customer`` moved an identifier to another customer.
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from rerate.bootstrap import App
from rerate.domain.mediation import mediate
from rerate.domain.rating import CUSTOMER_COLUMNS, VENDOR_COLUMNS, RatingOptions
from rerate.domain.scopes import Scope
from rerate.domain.statuses import Status
from rerate.services.corrections import (
    Contexts,
    Correction,
    CorrectionReport,
    JobProgress,
    _changed_mask,
    _reprice,
    execute,
)

MEDIATED_COLUMNS = (
    "number",
    "account_id",
    "customer_id",
    "vendor_id",
    "country",
    "destination_group",
    "rating_key",
)


#: What each side's price is computed from (besides the call's time and duration, never re-mediated).
_SIDE_INPUTS = {
    "status": (("number", "account_id", "customer_id"), CUSTOMER_COLUMNS),
    "vendor_status": (("number", "vendor_id"), VENDOR_COLUMNS),
}


def _remediate(current: pa.Table, contexts: Contexts) -> pa.Table:
    """Every XDR re-mediated, then re-priced on both sides with today's configuration."""
    mediated = mediate(current, contexts.mediation)
    updated = current
    for name in MEDIATED_COLUMNS:
        index = updated.schema.get_field_index(name)
        updated = updated.set_column(index, name, mediated.column(name).cast(current.schema.field(name).type))
    return _reprice(updated, contexts.rating, RatingOptions())


def _remediate_failed(current: pa.Table, contexts: Contexts) -> pa.Table:
    """Like :func:`_remediate`, but a side that was rated keeps its price unless re-mediation
    changed what it is priced from: curing a vendor side must not undo a deliberate re-rating
    (another tariff, ghost time) of the customer side, nor the other way round."""
    updated = _remediate(current, contexts)
    for status, (inputs, columns) in _SIDE_INPUTS.items():
        failed = pc.fill_null(pc.equal(current.column(status), Status.FAILED.value), False)
        kept = pc.and_(pc.invert(failed), pc.invert(_changed_mask(current, updated, inputs)))
        if not pc.any(kept).as_py():
            continue
        for name in columns:
            index = updated.schema.get_field_index(name)
            column = pc.if_else(kept, current.column(name), updated.column(name))
            updated = updated.set_column(index, name, column)
    return updated


def reprocess(
    app: App,
    scope: Scope,
    *,
    failed_only: bool,
    dry_run: bool = False,
    allow_closed: bool = False,
    progress: JobProgress | None = None,
) -> CorrectionReport:
    """Re-mediate and re-rate the scope's XDRs (only failed ones with ``failed_only``)."""
    correction = reprocess_correction(
        scope, failed_only=failed_only, dry_run=dry_run, allow_closed=allow_closed
    )
    return execute(app, correction, progress=progress)


def reprocess_correction(
    scope: Scope, *, failed_only: bool, dry_run: bool = False, allow_closed: bool = False
) -> Correction:
    if failed_only:
        scope = replace(scope, statuses=("failed",))
    what = f"re-process {'failed ' if failed_only else ''}{scope.describe()}"
    correction = Correction(
        kind="reprocess",
        scope=scope,
        description=what,
        parameters={"failed_only": failed_only, "allow_closed": allow_closed},
        dry_run=dry_run,
        compared=MEDIATED_COLUMNS + CUSTOMER_COLUMNS + VENDOR_COLUMNS,
        transform=_remediate_failed if failed_only else _remediate,
        allow_closed=allow_closed,
        reads_raw=True,
    )
    return correction
