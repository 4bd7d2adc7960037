"""The SSRF guard: every spelling of a non-public address is refused."""

from __future__ import annotations

import pytest

from datagems.errors import BadRequest
from datagems.ssrf import check_public_url

PUBLIC_V4 = "93.184.216.34"
DNS = {
    "api.example.com": [PUBLIC_V4],
    "dual.example.com": [PUBLIC_V4, "2606:2800:220:1:248:1893:25c8:1946"],
    "rebind.example.com": [PUBLIC_V4, "127.0.0.1"],
    "internal.example.com": ["10.1.2.3"],
    "v6-loopback.example.com": ["::1"],
    "mapped.example.com": ["::ffff:169.254.169.254"],
    "link.example.com": ["fe80::1%eth0"],
    "metadata-alias.example.com": ["169.254.169.254"],
    "ec2-v6.example.com": ["fd00:ec2::254"],
    "localhost": ["127.0.0.1", "::1"],
    "app.localhost": ["127.0.0.1"],
    "empty.example.com": [],
    "garbage.example.com": ["not-an-address"],
}


def fullwidth(text: str) -> str:
    """Digits as their full-width forms (U+FF10...), which IDNA maps back to ASCII."""
    return "".join(chr(0xFF10 + int(ch)) if ch.isdigit() else ch for ch in text)


def resolve(host: str) -> list[str]:
    if host not in DNS:
        raise OSError(f"no such host {host}")
    return DNS[host]


def check(url: str, *, allow_private: bool = False) -> str:
    return check_public_url(url, allow_private=allow_private, resolve=resolve)


ACCEPTED = {
    "https://api.example.com/v1": "https://api.example.com/v1",
    "HTTPS://API.Example.COM/v1": "https://api.example.com/v1",
    "https://api.example.com./v1": "https://api.example.com/v1",
    "http://api.example.com:8080/v1?x=1#frag": "http://api.example.com:8080/v1?x=1",
    "https://dual.example.com": "https://dual.example.com",
    f"http://{PUBLIC_V4}/": f"http://{PUBLIC_V4}/",
    "http://1572395042/": f"http://{PUBLIC_V4}/",  # decimal spelling of a public address
    "http://[2606:4700:4700::1111]/": "http://[2606:4700:4700::1111]/",
    "http://[2002:808:808::1]/": "http://[2002:808:808::1]/",  # 6to4 of public 8.8.8.8
    "http://[64:ff9b::808:808]/": "http://[64:ff9b::808:808]/",  # NAT64 of public 8.8.8.8
    f"http://{fullwidth('8.8.8.8')}/": "http://8.8.8.8/",  # full-width digits: NFKC
    "  https://api.example.com/v1  ": "https://api.example.com/v1",
}


@pytest.mark.parametrize(("url", "normalized"), ACCEPTED.items(), ids=ACCEPTED.keys())
def test_a_public_url_is_accepted_and_normalized(url: str, normalized: str) -> None:
    assert check(url) == normalized


REFUSED_ALWAYS = {
    # schemes and credentials
    "ftp://api.example.com/": "only http and https",
    "file:///etc/passwd": "only http and https",
    "gopher://api.example.com/": "only http and https",
    "javascript:alert(1)": "only http and https",
    "//api.example.com/": "only http and https",
    "https://user:pass@api.example.com/": "credentials",
    "https://user@api.example.com/": "credentials",
    "https://:pass@api.example.com/": "credentials",
    "https://api.example.com@127.0.0.1/": "credentials",
    "http://127.0.0.1\\@api.example.com/": "backslashes",
    "http://api.example.com /": "spaces",
    "http:///v1": "no host",
    "http://api.example.com:0/": "port 0",
    "http://api.example.com:99999/": "malformed",
    # unspecified
    "http://0.0.0.0/": "unspecified",
    "http://0/": "unspecified",
    "http://0.1.2.3/": "unspecified",
    "http://[::]/": "unspecified",
    # link-local and metadata
    "http://169.254.169.254/latest/meta-data/": "metadata",
    "http://169.254.1.1/": "link-local",
    "http://2852039166/": "metadata",  # decimal 169.254.169.254
    "http://0xa9.0xfe.0xa9.0xfe/": "metadata",  # hex
    "http://0251.0376.0251.0376/": "metadata",  # octal
    "http://169.254.43518/": "metadata",  # short form
    "http://[::ffff:169.254.169.254]/": "metadata",
    "http://[::ffff:a9fe:a9fe]/": "metadata",
    "http://[fd00:ec2::254]/": "metadata",
    "http://[FD00:EC2::254]/": "metadata",
    "http://100.100.100.200/": "metadata",
    "http://metadata.google.internal/computeMetadata/v1/": "metadata name",
    "http://METADATA.GOOGLE.INTERNAL./": "metadata name",
    "http://metadata/": "metadata name",
    "http://metadata-alias.example.com/": "metadata",
    "http://mapped.example.com/": "metadata",
    "http://ec2-v6.example.com/": "metadata",
    "http://[fe80::1]/": "link-local",
    "http://[fe80::1%25eth0]/": "zone id",
    "http://[::1%25lo]/": "zone id",
    "http://link.example.com/": "zone id",
    # multicast, broadcast, reserved
    "http://224.0.0.1/": "multicast",
    "http://239.255.255.250/": "multicast",
    "http://[ff02::1]/": "multicast",
    "http://255.255.255.255/": "reserved",
    "http://240.0.0.1/": "reserved",
    "http://192.0.2.10/": "reserved",  # documentation
    "http://198.18.0.1/": "reserved",  # benchmarking
    "http://[2001:db8::1]/": "reserved",  # documentation
    "http://[::7f00:1]/": "reserved",  # IPv4-compatible ::127.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/": "Teredo",
    # malformed numeric spellings a resolver could read some other way
    "http://1.2.3.4.5/": "neither a valid IPv4",
    "http://08.0.0.1/": "not a valid IPv4",
    "http://256.0.0.1/": "not a valid IPv4",
    "http://127.0.0.0x1g/": "cannot resolve",  # not numeric: a name, resolved and checked
    "http://4294967296/": "not a valid IPv4",
    "http://api.example.123/": "neither a valid IPv4",
    "http://[::ffff:0177.0.0.1]/": "malformed",
    "http://[not-v6]/": "malformed",
    # names that do not resolve (or to nothing usable)
    "http://nowhere.example.com/": "cannot resolve",
    "http://empty.example.com/": "no address",
    "http://garbage.example.com/": "not an address",
    "http://bad_label-.example.com/": "not a valid host name",
    "http://api..example.com/": "not a valid host name",
}


@pytest.mark.parametrize(("url", "reason"), REFUSED_ALWAYS.items(), ids=REFUSED_ALWAYS.keys())
def test_a_url_is_refused_even_when_private_urls_are_allowed(url: str, reason: str) -> None:
    for allow_private in (False, True):
        with pytest.raises(BadRequest) as caught:
            check(url, allow_private=allow_private)
        assert reason.lower() in str(caught.value).lower()
        assert caught.value.status == 400


LOCAL = {
    # loopback in every spelling
    "http://127.0.0.1/": "loopback",
    "http://127.0.0.1:3000/v1": "loopback",
    "http://127.1/": "loopback",
    "http://127.0.1/": "loopback",
    "http://2130706433/": "loopback",
    "http://0x7f000001/": "loopback",
    "http://0x7f.1/": "loopback",
    "http://0177.0.0.1/": "loopback",
    "http://017700000001/": "loopback",
    "http://127.0.0.1./": "loopback",
    "http://127.255.255.254/": "loopback",
    f"http://{fullwidth('127.0.0.1')}/": "loopback",
    "http://127。0。0。1/": "loopback",
    "http://[::1]/": "loopback",
    "http://[0:0:0:0:0:0:0:1]/": "loopback",
    "http://[::ffff:127.0.0.1]/": "loopback",
    "http://[::ffff:7f00:1]/": "loopback",
    "http://localhost/": "loopback",
    "http://LOCALHOST./": "loopback",
    "http://app.localhost/": "loopback",
    "http://v6-loopback.example.com/": "loopback",
    "http://rebind.example.com/": "loopback",  # one bad answer among good ones
    # private
    "http://10.0.0.1/": "private",
    "http://10.1/": "private",
    "http://0xa000001/": "private",
    "http://172.16.0.1/": "private",
    "http://172.31.255.255/": "private",
    "http://192.168.1.1/": "private",
    "http://3232235777/": "private",
    "http://[fc00::1]/": "private",
    "http://[fd12:3456::1]/": "private",
    "http://[fec0::1]/": "private",  # site-local
    "http://[::ffff:10.0.0.1]/": "private",
    "http://[2002:a00:1::]/": "private",  # 6to4 of 10.0.0.1
    "http://[2002:c0a8:101::1]/": "private",  # 6to4 of 192.168.1.1
    "http://[2002:7f00:1::]/": "loopback",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::7f00:1]/": "loopback",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a00:1]/": "private",  # NAT64 of 10.0.0.1
    "http://internal.example.com/": "private",
    # CGNAT
    "http://100.64.0.1/": "private",
    "http://100.127.255.254/": "private",
}


@pytest.mark.parametrize(("url", "reason"), LOCAL.items(), ids=LOCAL.keys())
def test_a_loopback_or_private_url_is_refused_by_default(url: str, reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check(url)
    assert reason in str(caught.value)


@pytest.mark.parametrize("url", LOCAL.keys())
def test_a_loopback_or_private_url_is_allowed_when_the_operator_allows_it(url: str) -> None:
    normalized = check(url, allow_private=True)
    assert normalized.startswith("http://")


def test_an_allowed_loopback_spelling_is_normalized_to_the_address_that_was_checked() -> None:
    assert check("http://0x7f.1:8000/v1", allow_private=True) == "http://127.0.0.1:8000/v1"
    assert check("http://[::ffff:7f00:1]/", allow_private=True) == "http://[::ffff:7f00:1]/"


def test_a_checked_url_checks_again_the_same_way() -> None:
    once = check("https://API.example.com./v1")
    assert check(once) == once


def test_a_name_that_changes_its_answer_is_refused_when_checked_again() -> None:
    answers = {"flip.example.com": [PUBLIC_V4]}
    url = check_public_url("http://flip.example.com/v1", resolve=lambda h: answers[h])
    answers["flip.example.com"] = ["127.0.0.1"]
    with pytest.raises(BadRequest, match="loopback"):
        check_public_url(url, resolve=lambda h: answers[h])


def test_the_system_resolver_is_used_by_default_for_localhost() -> None:
    with pytest.raises(BadRequest):
        check_public_url("http://localhost:1/")
    assert check_public_url("http://localhost:1/", allow_private=True) == "http://localhost:1/"


@pytest.mark.parametrize("value", ["", "   ", None, 42])
def test_an_empty_or_non_string_url_is_refused(value: object) -> None:
    with pytest.raises(BadRequest):
        check_public_url(value)  # type: ignore[arg-type]
