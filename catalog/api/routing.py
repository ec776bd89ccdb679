"""URL pieces shared by the API routers."""

# Primary keys in URLs: digits only, at most 18 (below the signed 64-bit maximum the databases
# store), so a huge or non-numeric id is a 404 from the router instead of a database error.
ID_PATTERN = r"[0-9]{1,18}"
