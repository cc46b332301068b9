"""Identity: accounts with profiles, devices per account, signed session tokens.

- ``tokens``: HMAC-SHA256 JWTs (RFC 7519 / RFC 7515 §A.1) with a ring of rotating keys.
- ``accounts``: accounts, profiles and devices as views in the StateStore.

Gateways take the account, profile and device only from a verified token, never from
a request body.
"""
