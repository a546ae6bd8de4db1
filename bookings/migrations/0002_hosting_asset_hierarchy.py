"""The hosting-asset hierarchy in the database: a trigger refuses any row whose parent or assigned-to
asset has the wrong type (bookings.validation.assets.HIERARCHY, frozen here as SQL), and any change of
an asset's type, so that an invalid asset can never be stored, not even by a direct INSERT.

One violation expression serves both PostgreSQL (a plpgsql trigger raising check_violation, which
Django maps to IntegrityError) and SQLite, the embedded default (RAISE(ABORT), an IntegrityError too).
"""

from django.db import migrations

VIOLATION = """((NEW.type = 'MANAGED_SERVER' AND (NEW.parent_asset_id IS NOT NULL OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'CLOUD_SERVER' AND (NEW.parent_asset_id IS NOT NULL OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'MANAGED_WEBSPACE' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('MANAGED_SERVER') OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'UNIX_USER' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('MANAGED_WEBSPACE') OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'EMAIL_ALIAS' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('MANAGED_WEBSPACE') OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'DOMAIN_SETUP' AND ((NEW.parent_asset_id IS NOT NULL AND COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('DOMAIN_SETUP')) OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'DOMAIN_DNS_SETUP' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('DOMAIN_SETUP') OR COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.assigned_to_asset_id), '') NOT IN ('MANAGED_WEBSPACE')))
    OR (NEW.type = 'DOMAIN_HTTP_SETUP' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('DOMAIN_SETUP') OR COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.assigned_to_asset_id), '') NOT IN ('UNIX_USER')))
    OR (NEW.type = 'DOMAIN_SMTP_SETUP' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('DOMAIN_SETUP') OR COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.assigned_to_asset_id), '') NOT IN ('MANAGED_WEBSPACE')))
    OR (NEW.type = 'DOMAIN_MBOX_SETUP' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('DOMAIN_SETUP') OR COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.assigned_to_asset_id), '') NOT IN ('MANAGED_WEBSPACE')))
    OR (NEW.type = 'EMAIL_ADDRESS' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('DOMAIN_MBOX_SETUP') OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'PGSQL_USER' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('MANAGED_WEBSPACE') OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'PGSQL_DATABASE' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('PGSQL_USER') OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'MARIADB_USER' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('MANAGED_WEBSPACE') OR NEW.assigned_to_asset_id IS NOT NULL))
    OR (NEW.type = 'MARIADB_DATABASE' AND (COALESCE((SELECT x.type FROM bookings_hostingasset x WHERE x.id = NEW.parent_asset_id), '') NOT IN ('MARIADB_USER') OR NEW.assigned_to_asset_id IS NOT NULL)))"""

MESSAGE = "hosting asset: parent or assigned-to asset of a wrong type (see the hosting-asset hierarchy)"
TYPE_FIXED = "hosting asset: the type of an asset cannot change"

POSTGRESQL = [
    f"""
CREATE OR REPLACE FUNCTION bookings_hostingasset_check() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.type <> OLD.type THEN
        RAISE EXCEPTION '%', '{TYPE_FIXED}' USING ERRCODE = 'check_violation';
    END IF;
    IF {VIOLATION} THEN
        RAISE EXCEPTION '% (type %, identifier %)', '{MESSAGE}', NEW.type, NEW.identifier
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
""",
    "DROP TRIGGER IF EXISTS bookings_hostingasset_check ON bookings_hostingasset;",
    """
CREATE TRIGGER bookings_hostingasset_check
BEFORE INSERT OR UPDATE ON bookings_hostingasset
FOR EACH ROW EXECUTE FUNCTION bookings_hostingasset_check();
""",
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS bookings_hostingasset_check ON bookings_hostingasset;",
    "DROP FUNCTION IF EXISTS bookings_hostingasset_check();",
]

SQLITE = [
    f"""
CREATE TRIGGER IF NOT EXISTS bookings_hostingasset_check_insert BEFORE INSERT ON bookings_hostingasset
WHEN {VIOLATION}
BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;
""",
    f"""
CREATE TRIGGER IF NOT EXISTS bookings_hostingasset_check_update BEFORE UPDATE ON bookings_hostingasset
WHEN {VIOLATION}
BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;
""",
    f"""
CREATE TRIGGER IF NOT EXISTS bookings_hostingasset_type_fixed BEFORE UPDATE OF type ON bookings_hostingasset
WHEN NEW.type <> OLD.type
BEGIN SELECT RAISE(ABORT, '{TYPE_FIXED}'); END;
""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS bookings_hostingasset_check_insert;",
    "DROP TRIGGER IF EXISTS bookings_hostingasset_check_update;",
    "DROP TRIGGER IF EXISTS bookings_hostingasset_type_fixed;",
]


def _run(statements: dict):
    def run(apps, schema_editor) -> None:
        for sql in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql, None)  # None: "%" is plpgsql, not a parameter

    return run


class Migration(migrations.Migration):
    dependencies = [("bookings", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE}),
        )
    ]
