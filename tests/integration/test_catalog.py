from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from rerate.catalog.database import schema_is_current
from rerate.catalog.models import Account, AuditEntry, Base, CountryCode, Customer
from rerate.services import listings, parties, tariffs
from rerate.services.errors import ConflictError, InvalidInputError, NotFoundError
from tests.factories import make_app, small_world


def _check_catalog(home: Path, url: str | None) -> None:
    app = make_app(home, url)
    try:
        again = make_app(home, url)  # init twice: idempotent
        again.close()
        assert schema_is_current(app.catalog.engine)
        with app.catalog.engine.connect() as connection:  # the migrations build exactly the models
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(app.catalog.engine).get_table_names())
        assert {"tariffs", "rates", "customers", "accounts", "collections", "audit_log"} <= tables
        with app.catalog.reading() as session:
            by_prefix = {c.prefix: c.iso for c in session.scalars(select(CountryCode))}
        assert by_prefix["1204"] == "CA"  # NANP area codes resolve to their country
        assert by_prefix["1"] == "US"
        assert by_prefix["77"] == "KZ"
        assert by_prefix["44"] == "GB"
        assert len(by_prefix) > 200
    finally:
        app.close()


def test_init_on_sqlite_is_idempotent(tmp_path: Path) -> None:
    _check_catalog(tmp_path / "home", None)


@pytest.mark.postgres
def test_init_on_postgres_is_idempotent(tmp_path: Path, postgres_url: str) -> None:
    _check_catalog(tmp_path / "home", postgres_url)


@pytest.mark.postgres
def test_world_on_postgres_keeps_money_exact(tmp_path: Path, postgres_url: str) -> None:
    app = small_world(tmp_path / "home", postgres_url)
    try:
        from rerate.catalog.models import Rate

        with app.catalog.reading() as session:
            rate = session.scalar(
                select(Rate).where(Rate.prefix == "49").order_by(Rate.effective_from.desc())
            )
        assert rate is not None
        assert str(rate.next_price) == "0.025"
        assert rate.effective_from == datetime(2026, 10, 15, tzinfo=UTC)
    finally:
        app.close()


def test_assignments_are_history_and_audited(world) -> None:  # type: ignore[no-untyped-def]
    parties.set_customer_tariff(world, "Acme", "cost", datetime(2026, 11, 1, tzinfo=UTC))
    with pytest.raises(ConflictError, match="history"):
        parties.set_customer_tariff(world, "Acme", "retail", datetime(2026, 11, 1, tzinfo=UTC))
    with pytest.raises(NotFoundError, match="no tariff named"):
        parties.set_customer_tariff(world, "Acme", "missing", datetime(2026, 12, 1, tzinfo=UTC))
    with world.catalog.reading() as session:
        actions = [a.action for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert actions.count("tariff.assign") == 3  # Acme, Carrier, then the change above
    assert last is not None and last.before == {"tariff": "retail", "from": "1970-01-01T00:00:00Z"}


def test_duplicate_names_are_refused(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConflictError):
        parties.add_customer(world, "Acme", tariff="retail")
    with pytest.raises(ConflictError):
        parties.add_account(world, "acc1", customer="Acme")
    with pytest.raises(ConflictError, match="already used"):
        parties.add_vendor(world, "Other", tariff="cost", connections=["gw1"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": " "}, "a name"),
        ({"currency": "dollars!!"}, "ISO 4217"),
        ({"timezone": "Mars/Olympus"}, "not a time zone"),
        ({"billing_period": "fortnightly"}, "monthly"),
    ],
)
def test_a_customer_is_refused_what_would_fail_later(world, options: dict[str, str], message: str) -> None:  # type: ignore[no-untyped-def]
    arguments = {"name": "Zeta", "tariff": "retail", **options}
    name = arguments.pop("name")
    with pytest.raises(InvalidInputError, match=message):
        parties.add_customer(world, name, **arguments)
    with pytest.raises(InvalidInputError, match="blank"):
        parties.add_vendor(world, "Blank", tariff="cost", connections=[""])


def test_a_tariff_in_another_currency_than_the_customers_is_refused_unless_meant(world) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import COST, write_rates

    tariffs.import_rates(
        world, "usd", write_rates(world.home / "usd.csv", COST), currency="USD", allow_past=True
    )
    october = datetime(2026, 10, 1, tzinfo=UTC)
    refusals = [
        lambda **o: parties.add_customer(world, "Zeta", tariff="retail", currency="USD", **o),
        lambda **o: parties.set_customer_tariff(world, "Acme", "usd", october, **o),
        lambda **o: parties.add_account(world, "acc9", customer="Acme", tariff="usd", **o),
        lambda **o: parties.set_account_tariff(world, "acc1", "usd", october, **o),
    ]
    for attempt in refusals:
        with pytest.raises(ConflictError, match=r"billed in (USD|EUR).*--allow-other-currency"):
            attempt()
    with world.catalog.reading() as session:
        names = {c.name for c in session.scalars(select(Customer))}
        accounts = {a.identifier for a in session.scalars(select(Account))}
    assert "Zeta" not in names and "acc9" not in accounts  # nothing half-made
    for attempt in refusals:
        attempt(allow_other_currency=True)
    shown = listings.parties(world)
    assert {c["name"]: c["tariff"] for c in shown["customers"]} == {"Acme": "usd", "Zeta": "retail"}
    assert {a["identifier"]: a["own_tariff"] for a in shown["accounts"]}["acc9"] == "usd"


def test_listings_show_what_is_in_force_now_not_what_is_planned(world) -> None:  # type: ignore[no-untyped-def]
    parties.add_customer(world, "Later", tariff="retail")
    parties.set_account_customer(world, "acc2", "Later", datetime(2099, 1, 1, tzinfo=UTC))
    parties.set_customer_tariff(world, "Acme", "cost", datetime(2099, 1, 1, tzinfo=UTC))
    parties.set_vendor_tariff(world, "Carrier", "retail", datetime(2026, 1, 1, tzinfo=UTC))
    shown = listings.parties(world)
    assert {a["identifier"]: a["customer"] for a in shown["accounts"]} == {"acc1": "Acme", "acc2": "Acme"}
    assert {c["name"]: (c["tariff"], c["accounts"]) for c in shown["customers"]} == {
        "Acme": ("retail", 2),
        "Later": ("retail", 0),
    }
    assert shown["vendors"] == [{"name": "Carrier", "tariff": "retail", "connections": ["gw1"]}]
    later = listings.parties(world, now=datetime(2099, 1, 1, tzinfo=UTC))
    assert {c["name"]: c["accounts"] for c in later["customers"]} == {"Acme": 1, "Later": 1}


def test_a_customer_shows_its_histories(world) -> None:  # type: ignore[no-untyped-def]
    parties.add_customer(world, "Other", tariff="retail")
    parties.set_customer_tariff(world, "Acme", "cost", datetime(2026, 11, 1, tzinfo=UTC))
    parties.set_account_customer(world, "acc2", "Other", datetime(2026, 10, 15, tzinfo=UTC))
    parties.set_account_customer(world, "acc2", "Acme", datetime(2026, 11, 15, tzinfo=UTC))
    shown = listings.customer(world, "Acme")
    assert [(t["from"].date().isoformat(), t["tariff"]) for t in shown["tariffs"]] == [
        ("1970-01-01", "retail"),
        ("2026-11-01", "cost"),
    ]
    spans = [(a["identifier"], a["from"].date().isoformat(), a["until"]) for a in shown["accounts"]]
    assert spans == [
        ("acc1", "1970-01-01", None),
        ("acc2", "1970-01-01", datetime(2026, 10, 15, tzinfo=UTC)),
        ("acc2", "2026-11-15", None),
    ]
    other = listings.customer(world, "Other")["accounts"]
    assert [(a["from"], a["until"]) for a in other] == [
        (datetime(2026, 10, 15, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC))
    ]
    with pytest.raises(NotFoundError):
        listings.customer(world, "Nobody")


def test_the_upgrade_to_autoincrement_rule_ids_starts_above_every_id_the_audit_trail_names(
    tmp_path: Path,
) -> None:
    """A home made before migration 0011: the highest rule was removed, so its id is only in the
    audit trail; the first rule after the upgrade must not take it again."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from rerate.catalog.database import _alembic_config

    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    config = _alembic_config()
    engine = create_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0010")
        for rule in (1, 2, 3):
            connection.execute(
                text(
                    "INSERT INTO mediation_rules (id, position, kind, match, replace, scope, created_by, "
                    "created_at) VALUES (:id, :id, 'number', '9', '', 'global', 't', '2026-10-01')"
                ),
                {"id": rule},
            )
            connection.execute(
                text(
                    "INSERT INTO audit_log (at, actor, action, subject) "
                    "VALUES ('2026-10-01', 't', 'mediation.rule_add', :subject)"
                ),
                {"subject": f"mediation rule {rule}"},
            )
        connection.execute(text("DELETE FROM mediation_rules WHERE id = 3"))
        command.upgrade(config, "head")
        connection.execute(
            text(
                "INSERT INTO mediation_rules (position, kind, match, replace, scope, created_by, created_at) "
                "VALUES (40, 'number', '8', '', 'global', 't', '2026-10-02')"
            )
        )
        ids = [row[0] for row in connection.execute(text("SELECT id FROM mediation_rules ORDER BY id"))]
    engine.dispose()
    assert ids == [1, 2, 4]
