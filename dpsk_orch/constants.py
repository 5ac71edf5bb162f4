"""Every tunable number of dpsk-orch in one place, with its unit in its name."""

# Tokens (API.md §2.1: lifetime unconfirmed; refresh early, and once on a 401).
DEFAULT_TOKEN_LIFETIME_S = 3600
TOKEN_REFRESH_MARGIN_S = 300
TOKEN_MAX_AGE_S = 45 * 60

# HTTP.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
USER_AGENT = "dpsk-orch/{version}"

# Retries (reads only; writes only when the server surely never saw them).
MAX_READ_ATTEMPTS = 5
MAX_WRITE_ATTEMPTS_ON_429 = 5
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 8.0
RETRY_AFTER_CAP_S = 30.0

# Rate limit: RuckusONE allows 2000 calls a minute per tenant; the client's bucket holds this many at once.
RATE_LIMIT_BURST = 20

# Paging (API.md §8.4: no documented maximum; 500 is the largest seen working).
PASSPHRASE_PAGE_SIZE = 500
POOL_PAGE_SIZE = 500
IDENTITY_PAGE_SIZE = 500

# Activities (API.md §6.3).
ACTIVITY_DEADLINE_S = 180.0
ACTIVITY_FIRST_POLL_S = 0.1
ACTIVITY_POLL_CAP_S = 3.0
ACTIVITY_QUERY_BATCH = 100
# A create whose 202 was never recorded (the run died mid-call) may still be running in RuckusONE;
# the next run waits this long after such an intent before it decides the create never happened.
INTENT_SETTLE_S = 60.0

# State.
SQLITE_BUSY_TIMEOUT_MS = 5000
FINGERPRINT_SHORT_CHARS = 6
