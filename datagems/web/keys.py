"""Every ``web.AppKey`` of the app, in one place."""

from __future__ import annotations

from aiohttp import web

from datagems.accounts.mailer import Mailer
from datagems.accounts.ratelimit import LoginLimits
from datagems.accounts.registration import Registrar
from datagems.accounts.users import Accounts
from datagems.job.browse import RecordIndex
from datagems.services import Services
from datagems.web.cache import WebCache
from datagems.web.state import Limiters, WebState

SERVICES = web.AppKey("services", Services)
ACCOUNTS = web.AppKey("accounts", Accounts)
LOGIN_LIMITS = web.AppKey("login_limits", LoginLimits)
REGISTRAR = web.AppKey("registrar", Registrar)
MAILER = web.AppKey("mailer", Mailer)
LIMITERS = web.AppKey("limiters", Limiters)
STATE = web.AppKey("state", WebState)
READ_CACHE = web.AppKey("read_cache", WebCache)  # what the read routes and auth read
ROUTE_SPECS = web.AppKey("route_specs", dict)  # (method, path) -> routes.Route
RECORD_INDEX = web.AppKey("record_index", RecordIndex)  # the records view's pages
