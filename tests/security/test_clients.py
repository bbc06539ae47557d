"""Client registration: the file format, key checks and the ``fhir-server clients`` command."""

from __future__ import annotations

import json

import pytest
from joserfc.jwk import ECKey

from fhir_server.cli import main
from fhir_server.security.clients import ClientFileError, ClientRegistry, client_from_json, read_clients


@pytest.fixture
def public_key_file(tmp_path):
    key = ECKey.generate_key("P-384", private=True, auto_kid=True)
    path = tmp_path / "hosp-a.jwks.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    return path, key


def test_clients_add_list_remove(tmp_path, public_key_file, capsys):
    path, _ = public_key_file
    clients_file = tmp_path / "clients.json"
    assert main(["clients", "add", "hosp-a", "--organization", "Organization/org-a", "--jwks", str(path),
                 "--scope", "system/*.rs", "--scope", "system/Task.cu", "--clients-file", str(clients_file)]) == 0
    registered = read_clients(clients_file)["hosp-a"]
    assert registered.organization == "Organization/org-a"
    assert registered.scopes == ("system/*.rs", "system/Task.cu") and not registered.admin
    assert oct(clients_file.stat().st_mode)[-3:] == "600"
    assert main(["clients", "add", "hosp-a", "--organization", "Organization/org-a", "--jwks", str(path),
                 "--clients-file", str(clients_file)]) == 1  # already registered
    capsys.readouterr()
    assert main(["clients", "list", "--clients-file", str(clients_file)]) == 0
    assert "hosp-a\tOrganization/org-a" in capsys.readouterr().out
    assert main(["clients", "remove", "hosp-a", "--clients-file", str(clients_file)]) == 0
    assert read_clients(clients_file) == {}


def test_private_keys_are_refused(tmp_path, public_key_file):
    _, key = public_key_file
    private = tmp_path / "private.json"
    private.write_text(json.dumps(key.as_dict(private=True)))
    clients_file = tmp_path / "clients.json"
    assert main(["clients", "add", "x", "--organization", "Organization/o", "--jwks", str(private),
                 "--clients-file", str(clients_file)]) == 1
    assert not clients_file.exists()


@pytest.mark.parametrize("change", [
    {"organization": "org-a"}, {"organization": "Patient/1"}, {"scopes": ["everything"]},
    {"jwks": {"keys": []}}, {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
    {"practitioner_role": "Practitioner/1"},
])
def test_malformed_registrations_are_refused(public_key_file, change):
    _, key = public_key_file
    entry = {"client_id": "x", "organization": "Organization/o", "jwks": {"keys": [key.as_dict(private=False)]},
             **change}
    with pytest.raises(ClientFileError):
        client_from_json(entry)


def test_registry_rereads_the_file_when_it_changes_at_most_once_per_interval(tmp_path, public_key_file):
    path, _ = public_key_file
    clients_file = tmp_path / "clients.json"
    registry = ClientRegistry(clients_file, recheck_seconds=60)
    assert registry.get("hosp-a") is None
    main(["clients", "add", "hosp-a", "--organization", "Organization/org-a", "--jwks", str(path),
          "--clients-file", str(clients_file)])
    assert registry.get("hosp-a") is None  # not looked at again yet
    registry.recheck_seconds = 0
    assert registry.get("hosp-a").organization == "Organization/org-a"
