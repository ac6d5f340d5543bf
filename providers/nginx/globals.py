"""The ``nginx`` kind: nginx's host-wide security settings, in effect with their defaults
wherever the spec has ``nginx_sites`` (declare ``nginx:`` only to change them).

Three files, each marked as the reconciler's:

* ``/etc/nginx/conf.d/reconciler-security.conf`` (http context): TLSv1.2+ only, Mozilla's
  "intermediate" cipher list, no server version in headers and error pages, TLS session
  settings. Every site, managed or not, inherits it unless it says otherwise.
* ``/etc/nginx/nginx.conf`` (``main_config: managed``, the default on Debian's layout):
  Debian's own file, same includes and defaults, but without its http-level
  ``ssl_protocols TLSv1 TLSv1.1 ...`` and ``ssl_prefer_server_ciphers on`` (nginx refuses a
  directive set twice in one context, so the snippet could not override them) and with
  ``worker_rlimit_nofile`` (main context, which conf.d cannot reach). The package's file is
  kept as ``nginx.conf.reconciler-orig`` and put back when the last site leaves the spec.
  A hand-edited nginx.conf is never overwritten: the change fails, and ``main_config:
  keep`` leaves it alone (the distribution's TLS defaults then stay at the http level).
* ``/etc/systemd/system/nginx.service.d/50-reconciler-hardening.conf``: the sandbox of
  the services kind's strict profile, less what an nginx master needs (it starts as root,
  binds 80/443, switches to www-data, signals its workers, writes its logs and temp
  files), installed only if nginx keeps running with it (see ``common.dropin``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from reconciler.provider import Issue, Resource

from ..common.dropin import header as dropin_header
from ..services.hardening import directive_lines
from ..services.model import Hardening

RESOURCE_ID = "host"
SNIPPET_PATH = "/etc/nginx/conf.d/reconciler-security.conf"
MAIN_PATH = "/etc/nginx/nginx.conf"
MAIN_ORIGINAL = "/etc/nginx/nginx.conf.reconciler-orig"
UNIT = "nginx.service"
DROPIN_NAME = "50-reconciler-hardening.conf"
HEADER_PREFIX = "# Managed by reconciler (nginx)"

# Mozilla's "intermediate" configuration (ssl-config.mozilla.org, guidelines 5.7): TLS 1.2
# with forward-secret AEAD suites only, TLS 1.3 suites are OpenSSL's defaults. The DHE
# suites are used only when an ssl_dhparam is configured.
MOZILLA_INTERMEDIATE = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305")

# What nginx's master process needs from the strict profile's defaults, and no more:
# it binds privileged ports, setuid()s to www-data (so @privileged stays allowed, and
# no private user namespace: www-data must exist in it), chowns its temp directories,
# opens logs owned by www-data, signals its workers, and raises its file limit
# (worker_rlimit_nofile, so @resources stays allowed). PCRE's JIT is off in Debian's
# nginx.conf, so no writable-executable memory is needed.
NGINX_BASE: dict[str, Any] = {
    "profile": "strict",
    "capability_bounding_set": ["CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN",
                                "CAP_DAC_OVERRIDE", "CAP_KILL"],
    "private_users": False,
    "system_call_filter": ["@system-service", "~@clock", "~@cpu-emulation", "~@debug", "~@module", "~@mount",
                           "~@obsolete", "~@raw-io", "~@reboot", "~@swap"],
    "memory_deny_write_execute": True,
    "read_write_paths": ["/var/log/nginx", "/var/lib/nginx", "/run"],
}


def _profile_shorthand(value: object) -> object:
    return {"profile": value} if isinstance(value, str) else value


class NginxGlobal(Resource):
    """nginx's host-wide TLS and security settings and the sandbox of nginx.service.
    Applies with these defaults on every host with nginx_sites; declare it to change them."""

    tls_protocols: list[str] = Field(default_factory=lambda: ["TLSv1.2", "TLSv1.3"],
                                     description="ssl_protocols at the http level (every site's default).")
    ssl_ciphers: str = Field(default=MOZILLA_INTERMEDIATE,
                             description="ssl_ciphers for TLS 1.2 (default: Mozilla intermediate).")
    ssl_prefer_server_ciphers: bool = Field(
        default=False, description="Mozilla's advice is off: every listed suite is strong, clients pick.")
    server_tokens: bool = Field(default=False,
                                description="Show nginx's version in the Server header and error pages.")
    worker_connections: int = Field(default=1024, ge=1, description="Connections per worker (events block).")
    worker_rlimit_nofile: int | None = Field(
        default=None, ge=1, description="Open-file limit of each worker; default 4 x worker_connections "
                                        "(a proxied connection holds two descriptors).")
    main_config: Literal["managed", "keep"] = Field(
        default="managed", description="managed: the reconciler writes nginx.conf (Debian's layout, without "
                                       "its TLSv1/1.1 default); keep: leave nginx.conf as it is.")
    hardening: Annotated[Hardening, BeforeValidator(_profile_shorthand)] | None = Field(
        default=None, description="Overrides of the nginx.service drop-in's sandbox (the services kind's "
                                  "hardening fields, e.g. {protect_home: read-only} for sites under "
                                  "/home, {read_write_paths: [/var/cache/nginx]}); none: no drop-in.")

    @property
    def rlimit_nofile(self) -> int:
        return self.worker_rlimit_nofile or 4 * self.worker_connections


def validate_global(g: NginxGlobal) -> list[Issue]:
    issues: list[Issue] = []
    for n, proto in enumerate(g.tls_protocols):
        if proto not in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
            issues.append(Issue(("tls_protocols", n), f"unknown protocol {proto!r} (TLSv1.2, TLSv1.3)"))
    if not g.tls_protocols:
        issues.append(Issue(("tls_protocols",), "list at least one protocol"))
    if not re.fullmatch(r"[A-Za-z0-9!+@:_.-]+", g.ssl_ciphers):
        issues.append(Issue(("ssl_ciphers",), "an OpenSSL cipher string: names separated by ':'"))
    if g.main_config == "keep":
        for field in ("tls_protocols", "ssl_prefer_server_ciphers"):
            if field in g.model_fields_set:
                issues.append(Issue((field,), "has no effect with main_config: keep (the distribution's "
                                              "nginx.conf sets it); set tls.protocols per site instead",
                                    warning=True))
    if g.worker_rlimit_nofile is not None and g.worker_rlimit_nofile < 2 * g.worker_connections:
        floor = 2 * g.worker_connections
        issues.append(Issue(("worker_rlimit_nofile",), f"below twice worker_connections ({floor}): a busy "
                                                       "proxy runs out of descriptors", warning=True))
    return issues


def effective_hardening(g: NginxGlobal) -> Hardening | None:
    """The drop-in's sandbox: nginx's base with the spec's fields over it (lists that add
    to a profile add to the base); None with ``hardening: none``."""
    if g.hardening is None:
        return Hardening.model_validate(NGINX_BASE)
    own = g.hardening.model_dump(exclude_unset=True)
    if own.get("profile") == "none" and len(own) == 1:
        return None
    merged = {**NGINX_BASE, **own}
    for additive in ("read_write_paths", "read_only_paths"):
        merged[additive] = [*NGINX_BASE.get(additive, []), *own.get(additive, [])]
    return Hardening.model_validate(merged)


def _header(what: str) -> str:
    return (f"{HEADER_PREFIX}: {what}.\n"
            "# Edits here are overwritten on the next apply; change the spec's `nginx:` settings instead.\n")


def render_snippet(g: NginxGlobal) -> str:
    """The http-context snippet. With ``main_config: keep`` it leaves out what Debian's
    nginx.conf already sets in that context (nginx refuses a duplicate)."""
    lines = [_header("TLS and security defaults for every site (http context)"),
             f"server_tokens {'on' if g.server_tokens else 'off'};"]
    if g.main_config == "managed":
        lines += ["ssl_protocols " + " ".join(g.tls_protocols) + ";",
                  f"ssl_prefer_server_ciphers {'on' if g.ssl_prefer_server_ciphers else 'off'};"]
    lines += [f"ssl_ciphers {g.ssl_ciphers};",
              "ssl_session_timeout 1d;",
              "ssl_session_cache shared:reconciler_tls:10m;",
              "ssl_session_tickets off;"]
    return "\n".join(lines) + "\n"


def render_main(g: NginxGlobal) -> str:
    """Debian 12's nginx.conf with the security settings moved to the snippet (comments
    trimmed); same user, includes and defaults, so every package layout keeps working."""
    return _header(f"main configuration; the package's file is kept as {MAIN_ORIGINAL}") + f"""
user www-data;
worker_processes auto;
worker_rlimit_nofile {g.rlimit_nofile};
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
include /etc/nginx/modules-enabled/*.conf;

events {{
    worker_connections {g.worker_connections};
}}

http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;

    include /etc/nginx/mime.types;
    default_type application/octet-stream;

    # TLS and server_tokens: {SNIPPET_PATH}
    access_log /var/log/nginx/access.log;
    gzip on;

    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}}
"""


def render_dropin(g: NginxGlobal) -> str | None:
    hardening = effective_hardening(g)
    if hardening is None:
        return None
    return (dropin_header("nginx:host, the nginx.service sandbox") + "\n[Service]\n"
            + "\n".join(directive_lines(hardening)) + "\n")
