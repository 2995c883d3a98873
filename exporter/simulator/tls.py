"""A throw-away certificate authority and server certificate for ``start(tls=True)``.

The CA is written to a temporary file (``ca_pem_path``) so clients can opt in to trusting it; everyone else
sees a certificate that fails verification, which is exactly what a test of "do we verify by default" needs.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsMaterial:
    """The server's SSL context and where the CA certificate lives; ``cleanup`` removes the files."""

    context: ssl.SSLContext
    ca_pem_path: Path
    directory: Path

    def cleanup(self) -> None:
        """Delete the temporary directory holding the CA certificate."""
        shutil.rmtree(self.directory, ignore_errors=True)


def make_tls(hostnames: Sequence[str]) -> TlsMaterial:
    """Issue a server certificate for ``hostnames`` (IPs allowed) from a fresh CA made with ``trustme``.

    ``trustme`` is imported here, not at module level: it is a test dependency, needed only when TLS is used.
    """
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("start(tls=True) needs the 'trustme' package (pip install trustme)") from exc
    authority = trustme.CA()
    server_cert = authority.issue_cert(*hostnames)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    directory = Path(tempfile.mkdtemp(prefix="integrateio-sim-tls-"))
    ca_path = directory / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_path))
    return TlsMaterial(context=context, ca_pem_path=ca_path, directory=directory)
