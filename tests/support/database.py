"""Database faults for tests: make the database itself refuse a write that passed validation."""

from django.db import connection


def refuse_inserts_titled(title: str) -> None:
    """A database trigger that fails the INSERT of a product with this title.

    It makes the database itself fail after the row passed validation and its image was
    stored: the one failure a per-row transaction has to clean up after.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"CREATE TRIGGER refuse_title BEFORE INSERT ON catalog_product "
                           f"WHEN NEW.title = '{title}' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        else:
            cursor.execute(f"""CREATE FUNCTION refuse_title() RETURNS trigger AS $$
                BEGIN IF NEW.title = '{title}' THEN RAISE EXCEPTION 'refused'; END IF;
                RETURN NEW; END $$ LANGUAGE plpgsql""")
            cursor.execute("CREATE TRIGGER refuse_title BEFORE INSERT ON catalog_product "
                           "FOR EACH ROW EXECUTE FUNCTION refuse_title()")
