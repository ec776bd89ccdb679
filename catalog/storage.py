"""Storage backends: which storage holds product images and which holds model files.

The STORAGES setting picks the backend (local files by default, Appwrite when ``APPWRITE_*`` is
set). Model files have their own alias so they can live in a separate, private bucket.
"""

from django.core.files.storage import storages


def model_files_storage():
    """Return the storage for trained model files (the ``models`` alias in STORAGES).

    A callable rather than an instance so migrations do not freeze one environment's backend.
    """
    return storages["models"]
