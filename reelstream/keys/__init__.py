"""ReelStream's key service: content keys per title and key class, envelope-encrypted at
rest, answered over SPEKE v2 (CPIX 2.3) so a commercial key provider can replace it.

- ``model``: key classes (SPEKE v2 resolution bands) and ``ContentKey``.
- ``kek``: the key-encryption-key port and its AES-256-GCM adapter (``REEL_KEK``).
- ``service``: ``KeyService`` creates, wraps, stores and publishes (key ids only).
- ``speke``: the CPIX document model, the aiohttp endpoint and the HTTP client.
- ``config``: which key provider to use, chosen by ``REEL_KEY_PROVIDER_URL``.

Key bytes live only in memory and, wrapped, in the ``content_keys`` view. They are never
written to origin storage, manifests, logs or events; ``ContentKey``'s repr hides them.
"""
