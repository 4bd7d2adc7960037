"""The SSRF guard for user-supplied URLs (an inference profile's base URL).

``check_public_url`` accepts an http(s) URL without credentials whose host is public:
every address it names or resolves to is checked, in every spelling an address can take
(IPv4-mapped IPv6, 6to4 / NAT64 embedding, decimal, octal, hex and short IPv4 forms,
trailing dots, upper case, full-width digits, IPv6 zone ids). It returns the URL
normalized (lower-case scheme and host, IP literals in canonical form, no fragment).

Refused always: non-http(s) schemes, credentials in the URL, zone ids, unspecified,
link-local, multicast, reserved and cloud-metadata addresses and names. Refused unless
``allow_private`` (``DATAGEN_ALLOW_PRIVATE_URLS``, for local development and tests):
loopback, private (RFC 1918, ULA, site-local) and CGNAT addresses, and ``localhost``.

Checking resolves the name now; the connection resolves it again later, so a name can
change its answer in between (DNS rebinding). Call ``check_public_url`` again right before
each request (it is cheap), do not follow redirects without checking their target, and
where possible connect to the addresses that were checked.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit, urlunsplit

from datagems.errors import BadRequest

Resolver = Callable[[str], list[str]]
IPAddress = IPv4Address | IPv6Address

PUBLIC, LOCAL, FORBIDDEN = "public", "local", "forbidden"

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "fd00:ec2::254",  # AWS over IPv6
    )
)
METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

_THIS_NETWORK = IPv4Network("0.0.0.0/8")
_PRIVATE_V4 = tuple(
    IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
_ULA = IPv6Network("fc00::/7")
_NAT64 = IPv6Network("64:ff9b::/96")
_V4_TRANSLATED = (
    IPv6Network("::/96"),  # IPv4-compatible (deprecated)
    IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
    IPv6Network("64:ff9b:1::/48"),  # local-use NAT64
)
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def _refuse(message: str) -> BadRequest:
    return BadRequest(f"URL refused: {message}")


class UnresolvedHost(BadRequest):
    """The host name does not resolve now (a typo, an offline resolver, a name that
    exists only on another network). ``url`` is the URL as it would have been returned:
    a caller that only stores it (a profile) may keep it with a warning; it is checked
    again, with its addresses, before every request."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url


# -- addresses ---------------------------------------------------------------------------
def classify(ip: IPAddress) -> tuple[str, str]:
    """(``PUBLIC`` | ``LOCAL`` | ``FORBIDDEN``, what the address is)."""
    if ip in METADATA_ADDRESSES:
        return FORBIDDEN, "a cloud metadata address"
    if isinstance(ip, IPv6Address):
        return _classify_v6(ip)
    if ip in _THIS_NETWORK:
        return FORBIDDEN, "an unspecified address"
    if ip.is_loopback:
        return LOCAL, "a loopback address"
    if ip.is_link_local:
        return FORBIDDEN, "a link-local address"
    if ip.is_multicast:
        return FORBIDDEN, "a multicast address"
    if any(ip in net for net in _PRIVATE_V4):
        return LOCAL, "a private address"
    if ip.is_reserved or ip.is_private or not ip.is_global:
        return FORBIDDEN, "a reserved address"
    return PUBLIC, "a public address"


def _embedded(ip: IPv4Address, how: str) -> tuple[str, str] | None:
    kind, what = classify(ip)
    return None if kind == PUBLIC else (kind, f"{what} ({how} {ip})")


def _classify_v6(ip: IPv6Address) -> tuple[str, str]:
    if ip.scope_id:
        return FORBIDDEN, "an address with a zone id"
    if ip.ipv4_mapped is not None:
        kind, what = classify(ip.ipv4_mapped)
        return kind, f"{what} (IPv4-mapped {ip.ipv4_mapped})"
    if ip.sixtofour is not None and (found := _embedded(ip.sixtofour, "6to4 of")):
        return found
    if ip in _NAT64:  # DNS64 answers for IPv4-only hosts: judge the embedded address
        v4 = IPv4Address(int(ip) & 0xFFFFFFFF)
        kind, what = classify(v4)
        return kind, f"{what} (NAT64 of {v4})"
    if ip.teredo is not None:
        return FORBIDDEN, "a Teredo tunnel address"
    if ip.is_unspecified:
        return FORBIDDEN, "an unspecified address"
    if ip.is_loopback:
        return LOCAL, "a loopback address"
    if ip.is_link_local:
        return FORBIDDEN, "a link-local address"
    if ip.is_multicast:
        return FORBIDDEN, "a multicast address"
    if ip in _ULA or ip.is_site_local:
        return LOCAL, "a private address"
    if any(ip in net for net in _V4_TRANSLATED):
        return FORBIDDEN, "a reserved IPv4-translation address"
    if ip.is_reserved or ip.is_private or not ip.is_global:
        return FORBIDDEN, "a reserved address"
    return PUBLIC, "a public address"


def _check_address(host: str, ip: IPAddress, allow_private: bool) -> None:
    kind, what = classify(ip)
    if kind == FORBIDDEN or (kind == LOCAL and not allow_private):
        raise _refuse(f"{host} is {what}; only public addresses are allowed")


# -- host spellings ----------------------------------------------------------------------
def _legacy_ipv4(host: str) -> IPv4Address | None:
    """An IPv4 address in any inet_aton spelling (``127.1``, ``0x7f.1``, ``0177.0.0.1``,
    ``2130706433``); ``None`` when ``host`` is not numeric; ``BadRequest`` when it is numeric
    but not a valid address (a resolver might read it some other way)."""
    labels = host.split(".")
    if not _NUMERIC_LABEL.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMERIC_LABEL.match(label) for label in labels):
        raise _refuse(f"{host} is neither a valid IPv4 address nor a host name")
    try:
        numbers = [
            int(label, 16)
            if label.startswith("0x")
            else int(label, 8)
            if len(label) > 1 and label.startswith("0")
            else int(label)
            for label in (label if label != "0x" else "0" for label in labels)
        ]
    except ValueError:
        raise _refuse(f"{host} is not a valid IPv4 address") from None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise _refuse(f"{host} is not a valid IPv4 address")
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (5 - len(numbers)) + last
    return IPv4Address(value)


def _ascii_host(host: str) -> str:
    """Lower-case ASCII (IDNA) host, one trailing dot removed."""
    if any(ord(ch) > 127 for ch in host):
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _refuse("the host name is not a valid internationalized name") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    return host


def _system_resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _resolved(host: str, resolve: Resolver | None) -> list[IPAddress]:
    try:
        answers = (resolve or _system_resolve)(host)
    except (OSError, UnicodeError) as exc:
        raise UnresolvedHost(
            f"URL refused: cannot resolve {host} ({exc.__class__.__name__})"
        ) from None
    if not answers:
        raise UnresolvedHost(f"URL refused: {host} resolves to no address")
    addresses: list[IPAddress] = []
    for answer in answers:
        text, _, zone = str(answer).partition("%")
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise _refuse(f"{host} resolves to something that is not an address") from None
        if zone:
            raise _refuse(f"{host} resolves to an address with a zone id")
        addresses.append(ip)
    return addresses


def _format_host(ip: IPAddress) -> str:
    return f"[{ip.compressed}]" if isinstance(ip, IPv6Address) else str(ip)


def check_public_url(
    url: str, *, allow_private: bool = False, resolve: Resolver | None = None
) -> str:
    """The normalized URL, or ``BadRequest`` saying why it is refused.

    ``resolve`` maps a host name to its addresses (``socket.getaddrinfo`` by default);
    every address must pass. Call again right before each request to the URL.
    """
    if not isinstance(url, str) or not url.strip():
        raise _refuse("the URL is empty")
    url = url.strip()
    if any(ord(ch) < 33 or ch in "\\\x7f" for ch in url):
        raise _refuse("the URL contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(f"the URL is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _refuse("only http and https URLs are allowed")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _refuse("credentials in the URL are not allowed")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise _refuse("the URL has no host")
    if port == 0:
        raise _refuse("port 0 is not allowed")
    if "%" in raw_host:
        raise _refuse("IPv6 zone ids are not allowed")

    if "[" in parts.netloc:
        try:
            literal: IPAddress | None = IPv6Address(raw_host)
        except ValueError:
            raise _refuse(f"{raw_host} is not a valid IPv6 address") from None
    else:
        host = _ascii_host(raw_host)
        if not host or len(host) > 253:
            raise _refuse("the host name is empty or too long")
        literal = _legacy_ipv4(host)
        if literal is None and not all(_LABEL.match(label) for label in host.split(".")):
            raise _refuse(f"{host} is not a valid host name")

    if literal is not None:
        _check_address(_format_host(literal), literal, allow_private)
        netloc_host = _format_host(literal)
    else:
        if host in METADATA_NAMES:
            raise _refuse(f"{host} is a cloud metadata name")
        if (host in LOOPBACK_NAMES or host.endswith(".localhost")) and not allow_private:
            raise _refuse(f"{host} is a loopback name; only public addresses are allowed")
        netloc = f"{host}:{port}" if port is not None else host
        try:
            addresses = _resolved(host, resolve)
        except UnresolvedHost as exc:
            normalized = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
            raise UnresolvedHost(exc.message, normalized) from None
        for ip in addresses:
            _check_address(host, ip, allow_private)
        netloc_host = host

    netloc = f"{netloc_host}:{port}" if port is not None else netloc_host
    return urlunsplit((scheme, netloc, parts.path, parts.query, ""))
