"""Web-request middleware: every request's storage calls share one time budget."""

from django.conf import settings

from catalog import appwrite


class StorageDeadlineMiddleware:
    """Bound the Appwrite time of one request to ``APPWRITE_REQUEST_DEADLINE`` seconds.

    Timeouts and retries are per call (``APPWRITE_TIMEOUT`` x ``APPWRITE_MAX_RETRIES``, a few
    minutes at worst); a request may make several calls. Inside this budget no retry starts
    that could not finish, so the request ends (with a 503 and nothing left in the bucket)
    well before the web server's worker timeout, which ``config/gunicorn.conf.py`` sets above
    it. Background workers have no such budget: a classification chunk may wait longer.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with appwrite.deadline(settings.APPWRITE["REQUEST_DEADLINE"]):
            return self.get_response(request)
