"""SPEKE v2.0 (CPIX 2.3): the document model, ReelStream's endpoint, and the client that
lets a commercial key provider replace ReelStream's key service by configuration."""
