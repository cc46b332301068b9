"""The player as a real client of a running ReelStream: manifests from the manifest
gateway, Clear Key licenses, segments from the edge tiers, decryption and checks, and
playback on a virtual clock shaped by a network trace (see :mod:`.session`)."""
