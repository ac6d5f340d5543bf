"""The ``nginx_sites`` spec model and its offline checks.

Field names are the user interface: they follow nginx's own words where a user
would look them up (``server_names``, ``proxy_pass``, ``client_max_body_size``)
and plain words where nginx needs several directives for one idea
(``tls.redirect_http``, ``rate_limit.requests_per_minute``).

Every string that ends up inside a directive is either rendered quoted or checked
here for characters that would end or open a directive (``;``, ``{``, ``}``,
newlines), so a value can never inject configuration. Raw nginx text is only
accepted where the spec says so: ``extra`` lists and ``config``.

Spec strings get the reconciler's ``${var}`` substitution before nginx sees them,
and nginx's own ``${name}`` spelling collides with it (``${host}`` is the host's
name in the spec, always defined): write ``$host``, or escape it as ``$${host}``.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from reconciler.interpolate import REFERENCE
from reconciler.provider import Issue, Resource

from ..common.checks import check_port

Path = tuple[str | int, ...]

SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
UPSTREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# nginx size syntax: bytes, or k/m/g suffixed.
SIZE = re.compile(r"^\d+[kKmMgG]?$")
# nginx time syntax as ``expires`` takes it, plus its keywords.
EXPIRES = re.compile(r"^(-?(\d+(ms|s|m|h|d|w|M|y)?)+|max|off|epoch|modified\s+\d+[smhdwMy]?)$")
LISTEN_ADDRESS = re.compile(r"^(\d{1,5}|[0-9.]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}|unix:/\S+)$")
LOCATION_MODIFIERS = ("=", "~", "~*", "^~")
# Characters that end or open a directive: never allowed in a modelled value.
_UNSAFE = re.compile(r"[;{}\n\r\0]")
_HAS_SPACE = re.compile(r"\s")
_LINE_BREAK = re.compile(r"[\n\r\0]")

DEFAULT_HSTS_MAX_AGE = 31536000  # one year, the value hstspreload.org asks for
# default: Debian's site; reconciler-security: the nginx kind's conf.d snippet.
RESERVED_SITE_NAMES = frozenset({"default", "reconciler-security"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BalanceMethod(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_CONN = "least_conn"
    IP_HASH = "ip_hash"
    RANDOM = "random"


class UpstreamServer(_Strict):
    address: str = Field(description='"host:port" or "unix:/path".')
    weight: int = Field(default=1, ge=1, description="Relative share of requests.")
    backup: bool = Field(default=False, description="Only used when the other servers are down.")
    max_fails: int | None = Field(default=None, ge=0,
                                  description="Failures within fail_timeout that mark the server down.")
    fail_timeout: str | None = Field(default=None, description='nginx time, e.g. "10s".')


class Upstream(_Strict):
    servers: list[str | UpstreamServer] = Field(
        description='Backends: "host:port" strings or {address, weight, backup, max_fails, fail_timeout}.')
    # strict=False: the spec gives the method as a string; the enum still rejects unknown ones.
    method: BalanceMethod = Field(default=BalanceMethod.ROUND_ROBIN, strict=False,
                                  description="Load-balancing method.")


class RateLimit(_Strict):
    requests_per_minute: int = Field(ge=1, description="Sustained rate per client (nginx counts per ms).")
    burst: int = Field(default=0, ge=0,
                       description="Requests above the rate that are queued (or let through).")
    nodelay: bool = Field(default=False, description="Serve burst requests at once instead of pacing them.")
    key: str = Field(default="$binary_remote_addr", description="What a client is (nginx variable).")
    zone_size: str = Field(default="10m", description="Shared memory for the zone (1m holds ~16k clients).")
    status: int = Field(default=429, ge=400, le=599, description="Status code for rejected requests.")


class TLS(_Strict):
    certificate: str | None = Field(default=None, description="Certificate (chain) file on the host.")
    key: str | None = Field(default=None, description="Private key file on the host.")
    self_signed: bool = Field(
        default=False, description="Generate a self-signed key pair with openssl when none exists yet "
        "(at certificate/key, default /etc/nginx/reconciler-tls/NAME.crt|key).")
    listen: list[int | str] = Field(default_factory=lambda: list[int | str]([443]),
                                    description="TLS ports or address:port.")
    http2: bool = Field(default=False, description="Serve HTTP/2 on the TLS ports.")
    redirect_http: bool = Field(default=False, description="Plain-HTTP ports answer 301 to https.")
    hsts: bool | int = Field(default=False,
                             description="Strict-Transport-Security: true (one year) or max-age.")
    protocols: list[str] = Field(default_factory=lambda: ["TLSv1.2", "TLSv1.3"],
                                 description="ssl_protocols.")


DEFAULT_GZIP_TYPES = (
    "text/plain", "text/css", "text/javascript", "application/javascript", "application/json",
    "application/xml", "image/svg+xml",
)


class Gzip(_Strict):
    level: int = Field(default=5, ge=1, le=9, description="gzip_comp_level.")
    min_length: int = Field(default=256, ge=0, description="Smallest response (bytes) worth compressing.")
    types: list[str] = Field(default_factory=lambda: list(DEFAULT_GZIP_TYPES),
                             description="MIME types besides text/html (always compressed).")
    proxied: bool = Field(default=True,
                          description="Also compress responses to requests that came via a proxy.")


class Location(_Strict):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    path: str = Field(description='Location match as nginx writes it: "/api/", "= /health", "~* \\.png$".')
    proxy_pass: str | None = Field(
        default=None, description="An upstream name of this site, or a URL (http://127.0.0.1:3000).")
    websocket: bool = Field(default=True, description="Pass Upgrade/Connection so websockets work.")
    root: str | None = Field(default=None, description="Serve files from this directory (root).")
    alias: str | None = Field(default=None,
                              description="Serve files from this directory in place of the path (alias).")
    try_files: list[str] | None = Field(default=None, description='try_files, e.g. ["$uri", "/index.html"].')
    expires: str | None = Field(default=None, description='Cache lifetime: "30d", "max", "off".')
    return_: str | int | None = Field(default=None, alias="return",
                                      description='"301 https://example.com$request_uri", 404, ...')
    rate_limit: RateLimit | None = Field(default=None, description="Limit for this location.")
    extra: list[str] = Field(default_factory=list, description="Raw directives, each on its own line.")


class NginxSite(Resource):
    """One site: a file in sites-available (linked from sites-enabled) or conf.d."""

    name: str = Field(description="File name of the site; also prefixes its upstreams and zones.")
    server_names: list[str] = Field(default_factory=list, description="server_name values (default: _).")
    listen: list[int | str] | None = Field(
        default=None, description="Plain-HTTP ports or address:port (default [80]; [] for TLS only).")
    ipv6: bool = Field(default=True, description="Also listen on [::] for every bare port.")
    default_server: bool = Field(default=False, description="Mark the listens as default_server.")
    tls: TLS | None = Field(default=None, description="HTTPS: certificate and key, or self-signed.")
    upstreams: dict[str, Upstream] = Field(default_factory=dict,
                                           description="Named groups of backend servers for proxy_pass.")
    locations: list[Location] = Field(default_factory=list, description="location blocks, in order.")
    gzip: bool | Gzip | None = Field(
        default=None,
        description="true (sensible settings), false (off) or settings; unset inherits nginx.conf.")
    rate_limit: RateLimit | None = Field(default=None, description="Limit for the whole server.")
    client_max_body_size: str | int | None = Field(
        default=None, description='Largest request body, e.g. "10m" (nginx\'s default: 1m).')
    extra: list[str] = Field(default_factory=list, description="Raw directives at server level.")
    config: str | None = Field(default=None, description="Raw site text, for what is not modelled.")


# ---------------------------------------------------------------------------------------
# Offline checks

def _without_references(value: str) -> str:
    """The text with ``${var}`` / ``${secret:NAME}`` references blanked out: specs are
    checked before substitution, and a reference's braces are not nginx syntax. Values
    are checked again after substitution (``desired``)."""
    return REFERENCE.sub("x", value)


def _directive_value(value: str, path: Path, what: str) -> list[Issue]:
    if _UNSAFE.search(_without_references(value)):
        return [Issue(path, f"{what} must not contain ';', '{{', '}}' or line breaks, got {value!r}")]
    return []


def _word(value: str, path: Path, what: str) -> list[Issue]:
    """A value rendered bare: no whitespace either."""
    issues = _directive_value(value, path, what)
    if not issues and (not value or _HAS_SPACE.search(value) or '"' in value or "'" in value):
        issues.append(Issue(path, f"{what} must be one word without spaces or quotes, got {value!r}"))
    return issues


def _balanced(text: str, path: Path) -> list[Issue]:
    depth = 0
    for ch in _without_references(text):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth != 0:
        return [Issue(path, "unbalanced braces: an extra directive must not close or leave open a block")]
    return []


def _absolute(value: str | None, path: Path, what: str) -> list[Issue]:
    if value is None:
        return []
    if not value.startswith("/"):
        return [Issue(path, f"{what} must be an absolute path, got {value!r}")]
    return _directive_value(value, path, what)


def _listen(values: list[int | str], path: Path) -> list[Issue]:
    issues: list[Issue] = []
    seen: set[str] = set()
    for n, item in enumerate(values):
        text = str(item)
        if (isinstance(item, int) and not 1 <= item <= 65535) or not LISTEN_ADDRESS.match(text):
            issues.append(Issue((*path, n),
                                f"expected a port (80) or address:port (127.0.0.1:8080), got {item!r}"))
        else:
            issues += check_port(item, (*path, n))
        if text in seen:
            issues.append(Issue((*path, n), f"{text} is listed twice"))
        seen.add(text)
    return issues


def _rate_limit(rl: RateLimit, path: Path) -> list[Issue]:
    issues = _word(rl.key, (*path, "key"), "key")
    if not rl.key.startswith("$"):
        issues.append(Issue((*path, "key"), f"key must be an nginx variable such as $binary_remote_addr, "
                                            f"got {rl.key!r}"))
    if not SIZE.match(rl.zone_size):
        issues.append(Issue((*path, "zone_size"), f'expected a size such as "10m", got {rl.zone_size!r}'))
    return issues


def _extra(lines: list[str], path: Path) -> list[Issue]:
    issues: list[Issue] = []
    for n, line in enumerate(lines):
        if not line.strip():
            issues.append(Issue((*path, n), "empty directive"))
        issues.extend(_balanced(line, (*path, n)))
    return issues


def _tls(site: NginxSite, tls: TLS) -> list[Issue]:
    issues: list[Issue] = []
    if not tls.self_signed and (tls.certificate is None or tls.key is None):
        issues.append(Issue(("tls",), "set both certificate and key, or self_signed: true"))
    issues += _absolute(tls.certificate, ("tls", "certificate"), "certificate")
    issues += _absolute(tls.key, ("tls", "key"), "key")
    if tls.certificate is not None and tls.certificate == tls.key:
        issues.append(Issue(("tls", "key"), "certificate and key must be different files"))
    if not tls.listen:
        issues.append(Issue(("tls", "listen"), "a TLS site needs at least one TLS port"))
    issues += _listen(tls.listen, ("tls", "listen"))
    plain = [80] if site.listen is None else site.listen
    overlap = {str(p) for p in tls.listen} & {str(p) for p in plain}
    if overlap:
        both = ", ".join(sorted(overlap))
        issues.append(Issue(("tls", "listen"), f"{both} is both a plain and a TLS port"))
    if tls.redirect_http and site.listen == []:
        issues.append(Issue(("tls", "redirect_http"), "redirect_http needs a plain-HTTP port in listen"))
    if isinstance(tls.hsts, int) and not isinstance(tls.hsts, bool) and tls.hsts < 0:
        issues.append(Issue(("tls", "hsts"), "max-age must not be negative"))
    for n, proto in enumerate(tls.protocols):
        if proto not in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
            issues.append(Issue(("tls", "protocols", n), f"unknown protocol {proto!r} (TLSv1.2, TLSv1.3)"))
    return issues


def _upstreams(site: NginxSite) -> list[Issue]:
    issues: list[Issue] = []
    for name, upstream in site.upstreams.items():
        path: Path = ("upstreams", name)
        if not UPSTREAM_NAME.match(name):
            issues.append(Issue(path, f"upstream name {name!r} may use letters, digits, '_' and '-' only"))
        if not upstream.servers:
            issues.append(Issue((*path, "servers"), "an upstream needs at least one server"))
        for n, server in enumerate(upstream.servers):
            spath: Path = (*path, "servers", n)
            address = server if isinstance(server, str) else server.address
            issues += _word(address, spath, "server address")
            issues += check_port(address, spath if isinstance(server, str) else (*spath, "address"))
            if isinstance(server, UpstreamServer):
                if server.backup and upstream.method in (BalanceMethod.IP_HASH, BalanceMethod.RANDOM):
                    issues.append(Issue((*spath, "backup"), f"nginx does not allow backup servers with "
                                                            f"method {upstream.method.value}"))
                if server.fail_timeout is not None:
                    issues += _word(server.fail_timeout, (*spath, "fail_timeout"), "fail_timeout")
    return issues


def _location(site: NginxSite, loc: Location, path: Path) -> list[Issue]:
    # The pattern is rendered quoted when it needs to be, so a regex may use {n} and ';'.
    issues: list[Issue] = []
    if _LINE_BREAK.search(loc.path):
        issues.append(Issue((*path, "path"), "path must not contain line breaks"))
    modifier, _, rest = loc.path.partition(" ")
    if modifier in LOCATION_MODIFIERS:
        if not rest.strip():
            issues.append(Issue((*path, "path"), f"{modifier!r} must be followed by a pattern"))
    elif not loc.path.startswith("/") and not loc.path.startswith("@"):
        issues.append(Issue((*path, "path"), f'expected "/prefix", "@name" or a modifier (= ~ ~* ^~) and a '
                                             f"pattern, got {loc.path!r}"))
    handlers = [name for name, value in (("proxy_pass", loc.proxy_pass), ("root", loc.root),
                                         ("alias", loc.alias), ("return", loc.return_)) if value is not None]
    if len(handlers) > 1:
        issues.append(Issue(path, "set only one of proxy_pass, root, alias, return "
                                  f"(got {', '.join(handlers)})"))
    if not handlers and not loc.extra:
        issues.append(Issue(path, "a location needs proxy_pass, root, alias, return or extra directives"))
    if loc.proxy_pass is not None:
        target = loc.proxy_pass
        issues += _word(target, (*path, "proxy_pass"), "proxy_pass")
        if "://" in target:
            if not target.startswith(("http://", "https://")):
                issues.append(Issue((*path, "proxy_pass"),
                                    f"expected an http:// or https:// URL, got {target!r}"))
            issues += check_port(target, (*path, "proxy_pass"))
        elif target not in site.upstreams:
            known = ", ".join(sorted(site.upstreams)) or "none defined"
            issues.append(Issue((*path, "proxy_pass"),
                                f"{target!r} is neither a URL nor an upstream of this site "
                                f"(upstreams: {known})"))
    issues += _absolute(loc.root, (*path, "root"), "root")
    issues += _absolute(loc.alias, (*path, "alias"), "alias")
    for n, item in enumerate(loc.try_files or []):
        issues += _word(item, (*path, "try_files", n), "try_files entry")
    if loc.try_files == []:
        issues.append(Issue((*path, "try_files"), "try_files needs at least one entry"))
    if loc.expires is not None and not EXPIRES.match(loc.expires):
        issues.append(Issue((*path, "expires"), f'expected a time ("30d", "12h"), "max", "off" or "epoch", '
                                                f"got {loc.expires!r}"))
    if loc.return_ is not None:
        issues += _return(loc.return_, (*path, "return"))
    if loc.rate_limit is not None:
        issues += _rate_limit(loc.rate_limit, (*path, "rate_limit"))
    issues += _extra(loc.extra, (*path, "extra"))
    return issues


def _return(value: str | int, path: Path) -> list[Issue]:
    if isinstance(value, int):
        return [] if 0 <= value <= 999 else [Issue(path, f"status code out of range: {value}")]
    issues = _directive_value(value, path, "return")
    code, _, rest = value.partition(" ")
    if code.isdigit():
        if rest.strip() and _HAS_SPACE.search(rest.strip()) and not rest.strip().startswith('"'):
            issues.append(Issue(path, "a return text with spaces must be quoted: 200 \"text with spaces\""))
    elif not value.startswith(("http://", "https://", "$scheme")):
        issues.append(Issue(path, f'expected "CODE [URL or text]" or a URL, got {value!r}'))
    return issues


def validate_site(site: NginxSite) -> list[Issue]:
    """Every offline problem with a site, each at its path inside the resource."""
    issues: list[Issue] = []
    if not SITE_NAME.match(site.name):
        issues.append(Issue(("name",), f"site name {site.name!r} may use letters, digits, '.', '_' and '-' "
                                       "(and must start with a letter or digit)"))
    if site.name in RESERVED_SITE_NAMES:
        issues.append(Issue(("name",), f"{site.name!r} is Debian's own default site, which the reconciler "
                                       "never touches; choose another name (default_server: true makes a "
                                       "site the catch-all)"))
    if site.config is not None:
        modelled = [name for name in ("server_names", "listen", "tls", "upstreams", "locations", "gzip",
                                      "rate_limit", "client_max_body_size", "extra")
                    if name in site.model_fields_set]
        if modelled:
            issues.append(Issue(("config",), f"config is the whole site text; it cannot be combined with "
                                             f"{', '.join(modelled)}"))
        if not site.config.strip():
            issues.append(Issue(("config",), "config is empty"))
        return issues
    for n, server_name in enumerate(site.server_names):
        # Rendered quoted when needed, so a regex name (~^app\d{2}\.example\.com$) may use braces.
        if not server_name or _HAS_SPACE.search(server_name) or _LINE_BREAK.search(server_name):
            issues.append(Issue(("server_names", n), f"a server name is one word without spaces, "
                                                     f"got {server_name!r}"))
    if site.listen is not None:
        issues += _listen(site.listen, ("listen",))
        if not site.listen and site.tls is None:
            issues.append(Issue(("listen",), "a site without TLS needs at least one port"))
    if site.tls is not None:
        issues += _tls(site, site.tls)
    issues += _upstreams(site)
    seen_paths: dict[str, int] = {}
    for n, loc in enumerate(site.locations):
        issues += _location(site, loc, ("locations", n))
        if loc.path in seen_paths:
            issues.append(Issue(("locations", n, "path"),
                                f"{loc.path!r} is already location {seen_paths[loc.path]}"))
        seen_paths.setdefault(loc.path, n)
    if isinstance(site.gzip, Gzip):
        for n, mime in enumerate(site.gzip.types):
            issues += _word(mime, ("gzip", "types", n), "MIME type")
    if site.rate_limit is not None:
        issues += _rate_limit(site.rate_limit, ("rate_limit",))
    body = site.client_max_body_size
    if body is not None and ((isinstance(body, int) and body < 0) or not SIZE.match(str(body))):
        issues.append(Issue(("client_max_body_size",), f'expected a size such as "10m", got {body!r}'))
    issues += _extra(site.extra, ("extra",))
    return issues

