"""Rendering an ``nginx_sites`` resource to the text of its site file (pure, no host).

The file starts with the ownership header, then the http-context declarations
the site needs, then its server blocks. Debian's ``nginx.conf`` includes
``sites-enabled/*`` (and ``conf.d/*.conf``) inside ``http {}``, so a site file
may declare ``upstream``, ``map`` and ``limit_req_zone`` at its top. Those names
are global to nginx, so every one is prefixed with the site's name: two sites
can both call an upstream ``backend``.

Rendering is deterministic (same spec, same bytes), so the file's SHA-256 is its
identity: a hand edit shows as a content change.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from reconciler.interpolate import REFERENCE

from .model import (
    DEFAULT_HSTS_MAX_AGE,
    LOCATION_MODIFIERS,
    TLS,
    BalanceMethod,
    Gzip,
    Location,
    NginxSite,
    RateLimit,
    Upstream,
    UpstreamServer,
)

HEADER_PREFIX = "# Managed by reconciler"
"""First line of every site file the reconciler writes: its ownership mark."""

SELF_SIGNED_DIR = "/etc/nginx/reconciler-tls"
"""Where self-signed key pairs go when the spec names no paths. Only the reconciler writes here."""

INDENT = "    "
VARIABLE_IDENT_MAX = 20
_IDENT_SAFE = re.compile(r"^[A-Za-z0-9_]+$")
_NEEDS_QUOTES = re.compile(r"[\s\"'{};#\\]")


def header(name: str) -> str:
    return (f"{HEADER_PREFIX} (nginx_sites:{name}). Edits here are overwritten on the next apply;\n"
            "# change the spec instead.\n")


def ident(site_name: str) -> str:
    """The site's name as an nginx identifier (zone and variable names allow [A-Za-z0-9_]).
    Names that had to change get a short hash, so ``a-b`` and ``a_b`` stay distinct."""
    if _IDENT_SAFE.match(site_name):
        return site_name
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", site_name)
    return f"{cleaned}_{hashlib.sha256(site_name.encode()).hexdigest()[:6]}"


def upstream_name(site_name: str, name: str) -> str:
    """``backend`` of site ``shop`` is ``backend.shop`` in nginx: upstream names are global.
    Upstream names have no dots, so the first label always says which upstream it is."""
    return f"{name}.{site_name}"


def quote(value: str) -> str:
    """A value as one nginx token: bare when safe, else double-quoted with escapes."""
    if value and not _NEEDS_QUOTES.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def self_signed_paths(site: NginxSite) -> tuple[str, str]:
    """Certificate and key paths of a TLS site (spec paths, or the self-signed defaults)."""
    assert site.tls is not None
    return (site.tls.certificate or f"{SELF_SIGNED_DIR}/{site.name}.crt",
            site.tls.key or f"{SELF_SIGNED_DIR}/{site.name}.key")


def hsts_max_age(tls: TLS) -> int | None:
    if tls.hsts is False:
        return None
    if tls.hsts is True:
        return DEFAULT_HSTS_MAX_AGE
    return tls.hsts


# ---------------------------------------------------------------------------------------
# Names of a site's rate-limit zones

@dataclass(frozen=True)
class Zone:
    name: str
    limit: RateLimit


def _slug(path: str) -> str:
    modifier, _, rest = path.partition(" ")
    pattern = rest if modifier in LOCATION_MODIFIERS else path
    slug = re.sub(r"[^A-Za-z0-9]+", "_", pattern).strip("_").lower()
    return slug or "root"


def zones(site: NginxSite) -> tuple[Zone | None, list[Zone | None]]:
    """The server-level zone and one zone (or None) per location, with unique names."""
    prefix = ident(site.name)
    taken: set[str] = set()

    def unique(base: str) -> str:
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        return name

    server = Zone(unique(f"{prefix}_server"), site.rate_limit) if site.rate_limit else None
    per_location = [Zone(unique(f"{prefix}_{_slug(loc.path)}"), loc.rate_limit) if loc.rate_limit else None
                    for loc in site.locations]
    return server, per_location


# ---------------------------------------------------------------------------------------
# Pieces

def _listen_lines(ports: list[int | str], *, ipv6: bool, ssl: bool, http2: bool, default: bool) -> list[str]:
    flags = "".join([" ssl" if ssl else "", " http2" if http2 else "", " default_server" if default else ""])
    lines: list[str] = []
    for port in ports:
        lines.append(f"listen {port}{flags};")
        if ipv6 and isinstance(port, int):
            lines.append(f"listen [::]:{port}{flags};")
    return lines


def _server_name(site: NginxSite) -> str:
    return "server_name " + (" ".join(map(quote, site.server_names)) if site.server_names else "_") + ";"


def _directive(line: str) -> str:
    """A raw ``extra`` item: kept as written, with the ``;`` a single directive needs
    (a block ends with ``}``; the brace of a trailing ``${secret:X}`` does not count)."""
    text = line.strip()
    return text if REFERENCE.sub("x", text).endswith((";", "}")) else text + ";"


def _block(opening: str, body: list[str]) -> list[str]:
    out = [opening + " {"]
    for line in body:
        out.extend((INDENT + part) if part else "" for part in line.split("\n"))
    out.append("}")
    return out


def _limit_req(zone: Zone) -> list[str]:
    rl = zone.limit
    parts = [f"limit_req zone={zone.name}"]
    if rl.burst:
        parts.append(f"burst={rl.burst}")
    if rl.nodelay:
        parts.append("nodelay")
    return [" ".join(parts) + ";", f"limit_req_status {rl.status};"]


def _upstream(site: NginxSite, name: str, upstream: Upstream) -> list[str]:
    body: list[str] = []
    if upstream.method is not BalanceMethod.ROUND_ROBIN:
        body.append(f"{upstream.method.value};")
    for server in upstream.servers:
        if isinstance(server, str):
            body.append(f"server {server};")
            continue
        flags = _server_flags(server)
        body.append(f"server {server.address}{flags};")
    return _block(f"upstream {upstream_name(site.name, name)}", body)


def _server_flags(server: UpstreamServer) -> str:
    flags = ""
    if server.weight != 1:
        flags += f" weight={server.weight}"
    if server.max_fails is not None:
        flags += f" max_fails={server.max_fails}"
    if server.fail_timeout is not None:
        flags += f" fail_timeout={server.fail_timeout}"
    if server.backup:
        flags += " backup"
    return flags


def proxy_target(site: NginxSite, target: str) -> str:
    """``backend`` -> ``http://backend.SITE``; a URL whose host is one of the site's
    upstreams gets the prefixed name too; any other URL is passed through."""
    if "://" not in target:
        return f"http://{upstream_name(site.name, target)}"
    scheme, _, rest = target.partition("://")
    host, sep, path = rest.partition("/")
    if host in site.upstreams:
        return f"{scheme}://{upstream_name(site.name, host)}{sep}{path}"
    return target


def _upgrade_variable(site: NginxSite) -> str:
    """Short on purpose: nginx refuses variable names that do not fit its hash bucket
    (variables_hash_bucket_size, 64 bytes by default, about 46 characters)."""
    name = ident(site.name)
    if len(name) > VARIABLE_IDENT_MAX:
        name = f"{name[:VARIABLE_IDENT_MAX - 7]}_{hashlib.sha256(site.name.encode()).hexdigest()[:6]}"
    return f"$reconciler_ws_{name}"


def _location(site: NginxSite, loc: Location, zone: Zone | None) -> list[str]:
    body: list[str] = []
    if zone is not None:
        body += _limit_req(zone)
    if loc.proxy_pass is not None:
        body.append(f"proxy_pass {proxy_target(site, loc.proxy_pass)};")
        body.append("proxy_http_version 1.1;")
        body.append("proxy_set_header Host $host;")
        body.append("proxy_set_header X-Real-IP $remote_addr;")
        body.append("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
        body.append("proxy_set_header X-Forwarded-Proto $scheme;")
        if loc.websocket:
            body.append("proxy_set_header Upgrade $http_upgrade;")
            body.append(f"proxy_set_header Connection {_upgrade_variable(site)};")
    if loc.root is not None:
        body.append(f"root {quote(loc.root)};")
    if loc.alias is not None:
        body.append(f"alias {quote(loc.alias)};")
    if loc.try_files:
        body.append("try_files " + " ".join(loc.try_files) + ";")
    if loc.expires is not None:
        body.append(f"expires {loc.expires};")
    if loc.return_ is not None:
        body.append(f"return {loc.return_};")
    body += [_directive(line) for line in loc.extra]
    modifier, _, pattern = loc.path.partition(" ")
    opening = (f"location {modifier} {quote(pattern.strip())}" if modifier in LOCATION_MODIFIERS
               else f"location {quote(loc.path)}")
    return _block(opening, body)


def _gzip(setting: bool | Gzip) -> list[str]:
    if setting is False:
        return ["gzip off;"]
    settings = setting if isinstance(setting, Gzip) else Gzip()
    lines = ["gzip on;", "gzip_vary on;", f"gzip_comp_level {settings.level};",
             f"gzip_min_length {settings.min_length};"]
    lines.append("gzip_proxied " + ("any;" if settings.proxied else "off;"))
    if settings.types:
        lines.append("gzip_types " + " ".join(settings.types) + ";")
    return lines


def _redirect_server(site: NginxSite, tls: TLS) -> list[str]:
    # $host drops any port the client used; a non-standard TLS port has to be named.
    port = str(tls.listen[0]).rsplit(":", 1)[-1]
    suffix = f":{port}" if port.isdigit() and port != "443" else ""
    body = [*_listen_lines(site.listen or [80], ipv6=site.ipv6, ssl=False, http2=False,
                           default=site.default_server),
            _server_name(site), "",
            f"return 301 https://$host{suffix}$request_uri;"]
    return _block("server", body)


def _main_server(site: NginxSite, server_zone: Zone | None, location_zones: list[Zone | None]) -> list[str]:
    tls = site.tls
    plain: list[int | str] = [80] if site.listen is None else site.listen
    if tls is not None and tls.redirect_http:
        plain = []  # the redirect server has them
    body = _listen_lines(plain, ipv6=site.ipv6, ssl=False, http2=False, default=site.default_server)
    if tls is not None:
        body += _listen_lines(tls.listen, ipv6=site.ipv6, ssl=True, http2=tls.http2,
                              default=site.default_server)
    body.append(_server_name(site))
    if tls is not None:
        certificate, key = self_signed_paths(site)
        body += ["", f"ssl_certificate {quote(certificate)};", f"ssl_certificate_key {quote(key)};",
                 "ssl_protocols " + " ".join(tls.protocols) + ";"]
        max_age = hsts_max_age(tls)
        if max_age is not None:
            # nginx sends server-level add_header only from locations without add_header of their own.
            body.append(f'add_header Strict-Transport-Security "max-age={max_age}" always;')
    settings: list[str] = []
    if site.client_max_body_size is not None:
        settings.append(f"client_max_body_size {site.client_max_body_size};")
    if site.gzip is not None:
        settings += _gzip(site.gzip)
    if server_zone is not None:
        settings += _limit_req(server_zone)
    settings += [_directive(line) for line in site.extra]
    if settings:
        body += ["", *settings]
    for loc, zone in zip(site.locations, location_zones, strict=True):
        body += ["", *_location(site, loc, zone)]
    return _block("server", body)


# ---------------------------------------------------------------------------------------

def render_site(site: NginxSite) -> str:
    """The full text of the site file. ``${secret:...}`` references stay as written
    (the provider reveals them), so this is safe to show and to golden-test."""
    out = [header(site.name)]
    if site.config is not None:
        out.append(site.config if site.config.endswith("\n") else site.config + "\n")
        return "".join(out)
    server_zone, location_zones = zones(site)
    http: list[str] = []
    for zone in [server_zone, *location_zones]:
        if zone is not None:
            rl = zone.limit
            http.append(f"limit_req_zone {rl.key} zone={zone.name}:{rl.zone_size} "
                        f"rate={rl.requests_per_minute}r/m;")
    if any(loc.proxy_pass is not None and loc.websocket for loc in site.locations):
        if http:
            http.append("")
        # Connection: upgrade for websocket requests, close otherwise (nginx's own default).
        http += _block(f"map $http_upgrade {_upgrade_variable(site)}", ["default upgrade;", "''      close;"])
    for name, upstream in site.upstreams.items():
        if http:
            http.append("")
        http += _upstream(site, name, upstream)
    blocks: list[list[str]] = []
    if http:
        blocks.append(http)
    if site.tls is not None and site.tls.redirect_http:
        blocks.append(_redirect_server(site, site.tls))
    blocks.append(_main_server(site, server_zone, location_zones))
    for block in blocks:
        out.append("\n" + "\n".join(block) + "\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------
# From a line of the rendered file back to the spec

def _values(value: object, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    out: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(value, bool) or value is None:
        return out
    if isinstance(value, str | int):
        out.append((path, str(value)))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.extend(_values(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_values(v, (*path, i)))
    return out


def source_of_line(site: NginxSite, line_no: int) -> tuple[tuple[str | int, ...], int]:
    """The spec field that produced line ``line_no`` (1-based) of the rendered site file,
    and how many lines into that field's value it is (for a multi-line ``config``).
    ``((), 0)`` (the site itself) when no field can be told."""
    lines = render_site(site).splitlines()
    if not 1 <= line_no <= len(lines):
        return (), 0
    header_lines = header(site.name).count("\n")
    if site.config is not None:
        return (("config",), line_no - header_lines - 1) if line_no > header_lines else ((), 0)
    text = lines[line_no - 1].strip()
    tokens = set(re.split(r"[\s;{}\"']+", text))
    # The longest spec value written on that line says which field it came from (a
    # location's path "/" is on many lines, a proxy_pass URL or an extra directive on one).
    best: tuple[int, tuple[str | int, ...]] | None = None
    for path, value in _values(site.model_dump(mode="python", by_alias=True)):
        value = value.strip()
        if not value or (len(value) < 3 and value not in tokens):
            continue
        found = value in text or _directive(value) in text
        if found and (best is None or (len(value), len(path)) > (best[0], len(best[1]))):
            best = (len(value), path)
    return (best[1], 0) if best else ((), 0)
