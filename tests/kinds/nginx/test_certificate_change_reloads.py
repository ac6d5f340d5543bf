"""nginx reads certificates only when it (re)loads: when a `files` resource holding a
site's certificate changes, the site is triggered, nginx is reloaded once, and the
new certificate is what clients get, although the site file itself did not change."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testbed.hosts import TestHost
from tests.kinds.nginx.support import apply_ok, changes, curl_https, plan_json, write_spec


def certificate(serial: int) -> tuple[str, str]:
    """(certificate PEM, key PEM) for tls.test, made with the cryptography library."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("tls.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def served_serial(host: TestHost) -> int:
    out = host.exec("openssl s_client -connect 127.0.0.1:443 -servername tls.test </dev/null 2>/dev/null"
                    " | openssl x509 -noout -serial").stdout
    return int(out.strip().split("=", 1)[1], 16)


def spec_for(tmp_path: Path, host: TestHost, serial: int) -> Path:
    cert, key = certificate(serial)
    return write_spec(tmp_path / "spec", host, files=[
        {"path": "/etc/ssl/tls-test/cert.pem", "content": cert},
        {"path": "/etc/ssl/tls-test/key.pem", "content": key, "mode": "0600"},
    ], nginx_sites=[{
        "name": "tls", "server_names": ["tls.test"],
        "tls": {"certificate": "/etc/ssl/tls-test/cert.pem", "key": "/etc/ssl/tls-test/key.pem"},
        "locations": [{"path": "/", "return": "200 'secure'"}],
    }])


@pytest.mark.timeout(600)
def test_certificate_change_reloads_nginx(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = spec_for(tmp_path, host, 1001)
    apply_ok(spec)
    assert served_serial(host) == 1001
    assert curl_https(host, "tls.test", "/", "--cacert", "/etc/ssl/tls-test/cert.pem") == (200, "secure")

    spec_for(tmp_path, host, 2002)
    code, plan = plan_json(spec)
    assert code == 2
    by_address = {c["address"]: c for c in changes(plan)}
    assert by_address["nginx_sites:tls"]["reason"] == "triggered"
    assert by_address["nginx_sites:tls"]["fields"] == []
    assert {"files:/etc/ssl/tls-test/cert.pem", "files:/etc/ssl/tls-test/key.pem"} <= set(by_address)

    apply_ok(spec)
    assert served_serial(host) == 2002
    code, plan = plan_json(spec)
    assert code == 0 and changes(plan) == []
