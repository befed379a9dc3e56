"""A TLS-terminating nginx in front of an app, as a load balancer in production would be.

The certificate is self-signed, made by ``openssl`` for 127.0.0.1 on every run. nginx sends
the cluster's forwarded headers (``qrpay_tools.cluster.run.FORWARDED_HEADERS``), so a test
through it proves what the local cluster relies on.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from qrpay_tools.cluster.run import forwarded_headers, nginx_binary
from tests.support.cluster import require_nginx
from tests.support.processes import free_port, kill_group, start, terminate, wait_for_http


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid for a day."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    made = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert made.returncode == 0, made.stderr
    return cert, key


def tls_nginx_config(directory: Path, listen: int, upstream: str, cert: Path, key: Path) -> str:
    temp = "".join(
        f"    {kind}_temp_path {directory}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "worker_processes 1;\n"
        "daemon off;\n"
        f"pid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    access_log off;\n" + temp + "    server {\n"
        f"        listen 127.0.0.1:{listen} ssl;\n"
        f"        ssl_certificate {cert};\n"
        f"        ssl_certificate_key {key};\n"
        "        location / {\n"
        f"            proxy_pass {upstream};\n"
        "            proxy_http_version 1.1;\n" + forwarded_headers("            ") + "        }\n"
        "    }\n"
        "}\n"
    )


@contextmanager
def tls_in_front(upstream: str, directory: Path) -> Iterator[str]:
    """``https://127.0.0.1:<port>``: nginx terminating TLS in front of ``upstream``."""
    require_nginx()
    nginx = nginx_binary()
    assert nginx is not None
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(directory)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(tls_nginx_config(directory, port, upstream, cert, key))
    log = directory / "nginx.log"
    process = start([nginx, "-c", str(conf), "-p", f"{directory}/", "-e", str(log)], log=log)
    url = f"https://127.0.0.1:{port}"
    try:
        # Trusting our own certificate: the answer proves TLS works end to end.
        context = ssl.create_default_context(cafile=str(cert))
        wait_for_http([f"{url}/ping"], process=process, log=log, verify=context)
        yield url
    finally:
        terminate(process)
        kill_group(process)
