"""Typed application keys (aiohttp ``web.AppKey``) shared by the gateways."""

from __future__ import annotations

from aiohttp import web

from reelstream.gateways.services import Services

SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    """The shared services, from the root app (sub-apps see it through ``config_dict``)."""
    return request.config_dict[SERVICES]
