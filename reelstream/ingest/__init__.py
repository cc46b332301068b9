"""Ingest: a studio master and its sidecars go into origin storage, are validated, and the
title is planned into chunk jobs."""
