"""Test certificates for the TLS tests, made with trustme.

    python tests/pki.py DIR      # write them into DIR (used by the wine run)

The tests call :func:`pki` (through a fixture): it reads the files from
``$SOCKET2_TEST_PKI`` when that is set (the Windows run under wine makes
them on the Linux side, where trustme's cryptography works), else makes
them into a temporary directory.
"""
import datetime
import ipaddress
import os
import sys

NAMES = ("ca", "server", "client", "expired", "stranger", "selfsigned")


def make(d):
    """Write the CA, the leaf certificates and their keys into *d*; return
    the dict of paths."""
    import trustme
    os.makedirs(d, exist_ok=True)
    ca = trustme.CA()
    now = datetime.datetime.now(datetime.timezone.utc)
    certs = {
        "server": ca.issue_cert("localhost", "127.0.0.1", "::1"),
        "client": ca.issue_cert("client@example.test", common_name="client"),
        "expired": ca.issue_cert(
            "localhost", "127.0.0.1",
            not_before=now - datetime.timedelta(days=10),
            not_after=now - datetime.timedelta(days=1)),
        "stranger": trustme.CA().issue_cert("localhost", "127.0.0.1"),
    }
    ca.cert_pem.write_to_path(os.path.join(d, "ca.pem"))
    for name, cert in certs.items():
        cert.private_key_and_cert_chain_pem.write_to_path(
            os.path.join(d, name + ".pem"))
        cert.private_key_pem.write_to_path(os.path.join(d, name + ".key"))
        cert.cert_chain_pems[0].write_to_path(os.path.join(d, name + ".crt"))
    _self_signed(os.path.join(d, "selfsigned"))
    return paths(d)


def _self_signed(base):
    """A certificate for localhost signed by its own key (cryptography is
    trustme's own dependency)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    for ext, data in ((".pem", key_pem + cert_pem), (".key", key_pem),
                      (".crt", cert_pem)):
        with open(base + ext, "wb") as f:
            f.write(data)


def paths(d):
    out = {"d": d, "ca": os.path.join(d, "ca.pem")}
    for name in NAMES[1:]:
        out[name] = os.path.join(d, name + ".pem")
        out[name + "_key"] = os.path.join(d, name + ".key")
        out[name + "_crt"] = os.path.join(d, name + ".crt")
    return out


def pki(tmpdir_factory):
    """The test PKI: from $SOCKET2_TEST_PKI, else made now (skips the
    calling test when trustme is missing)."""
    given = os.environ.get("SOCKET2_TEST_PKI")
    if given:
        return paths(given)
    import pytest
    pytest.importorskip("trustme", reason="needs trustme: pip install "
                        "trustme (.ci/run installs the test extras)")
    return make(str(tmpdir_factory.mktemp("pki")))


if __name__ == "__main__":
    make(sys.argv[1])
