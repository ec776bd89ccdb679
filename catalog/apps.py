from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def create_cache_table(sender, using: str, verbosity: int = 1, **kwargs) -> None:
    """`migrate` also creates the database cache's table (a no-op with Redis, or when it exists).

    The shared cache holds the API's throttle counters; without its table every throttled
    request would fail. After every migrate rather than in a migration, so switching CACHES from
    Redis to the database later needs nothing more than `migrate`.
    """
    call_command("createcachetable", database=using, verbosity=max(0, verbosity - 1))


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self):
        post_migrate.connect(create_cache_table, sender=self,
                             dispatch_uid="catalog_create_cache_table")
